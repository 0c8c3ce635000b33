"""The run directory: the unit users share. Everything a report says is derivable from it.

runs/<session_id>/
  config.resolved.json   metrics.jsonl   adjustments.jsonl   run.json
  checkpoints/last.pt, best.pt     reports/     tensorboard/
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path


def clean_json(obj):
    """Floats rounded to 12 significant digits (no 9.999999999999999e-05), NaN/inf as strings."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return str(obj)
        return float(f"{obj:.12g}")
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(clean_json(obj), ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record and flush it to disk, so a crash loses at most the line being written."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(clean_json(record), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """All complete records; a torn last line (killed mid-write) is ignored."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@dataclass
class RunDir:
    root: Path

    @property
    def session_id(self) -> str:
        return self.root.name

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def adjustments(self) -> Path:
        return self.root / "adjustments.jsonl"

    @property
    def resolved_config(self) -> Path:
        return self.root / "config.resolved.json"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    def create(self) -> "RunDir":
        for d in (self.root, self.checkpoints, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def truncate_metrics_after(self, epoch: int) -> None:
        """On resume: drop records of epochs the checkpoint does not contain (they are re-run)."""
        keep = [r for r in read_jsonl(self.metrics) if int(r.get("epoch", 0)) <= epoch]
        tmp = self.metrics.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep), encoding="utf-8")
        os.replace(tmp, self.metrics)


def new_session_id(model_name: str, runs_dir: Path) -> str:
    """<Model>_<YYYYmmdd_HHMMSS>, with a suffix when that name is taken (two runs in one second)."""
    base = f"{model_name}_{time.strftime('%Y%m%d_%H%M%S')}"
    name, n = base, 1
    while (runs_dir / name).exists():
        n += 1
        name = f"{base}_{n}"
    return name


def resolve_run_dir(path: str | Path) -> RunDir:
    """A run directory given by path, or a ValueError with one line saying what is wrong."""
    root = Path(path)
    if not (root / "checkpoints").is_dir() and not (root / "metrics.jsonl").exists():
        raise ValueError(f"'{root}' is not a trainpilot run directory (no checkpoints/ or metrics.jsonl)")
    return RunDir(root)
