"""JSON on disk, written so a crash never loses what was already there, and numbers without float noise.

Shared by the engine (metrics.jsonl, run files) and the reports (markdown/JSON twins): one definition
of how a float is cleaned (``9.999999999999999e-05`` -> ``0.0001``) and how a file is replaced.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any

_SIG_DIGITS = 12


def clean_number(x: Any) -> Any:
    """Return ``x`` with float noise removed; non-floats come back unchanged.

    Integers (and bools) stay as they are; a float is rounded to 12 significant
    digits so that its ``repr`` is the shortest exact form
    (``9.999999999999999e-05`` -> ``0.0001``, ``1.9999999999999998e-05`` ->
    ``2e-05``). NaN and infinities are returned unchanged.
    """
    if isinstance(x, bool):
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        dtype = getattr(x, "dtype", None)
        # numpy float16/32: their own shortest form (float32(0.1) -> 0.1, not 0.100000001490)
        f = float(str(x)) if dtype is not None and getattr(dtype, "itemsize", 8) < 8 else float(x)
        if not math.isfinite(f) or f == 0.0:
            return f
        return float(f"{f:.{_SIG_DIGITS}g}")
    return x


def sanitize_for_json(obj: Any) -> Any:
    """Recursively clean floats and make ``obj`` valid strict JSON.

    NaN / inf become the strings ``"nan"`` / ``"inf"`` / ``"-inf"``; tuples and
    sets become lists; mapping keys become strings; numpy scalars and arrays
    become plain Python values; anything else unknown becomes ``str(obj)``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = clean_number(obj)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(obj, dict):
        return {str(k): sanitize_for_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [sanitize_for_json(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return sanitize_for_json(obj.tolist())
    return str(obj)


def read_jsonl(path: Path) -> list[dict]:
    """All JSON objects in ``path``, one per line; a missing file gives ``[]``.

    Blank and unreadable lines (e.g. a half-written last line) are skipped.
    Python's parser accepts the ``NaN``/``Infinity`` literals a writer may emit.
    """
    path = Path(path)
    if not path.is_file():
        return []
    out: list[dict] = []
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record and flush it to disk, so a crash loses at most the line being written."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(sanitize_for_json(record), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as indented, cleaned JSON, replacing ``path`` atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), json.dumps(sanitize_for_json(obj), ensure_ascii=False, indent=2))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``,
    so readers never see a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; an empty dict when the file is missing or not a JSON object."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}
