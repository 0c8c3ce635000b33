"""Atomic, resumable checkpoints that hold tensors and plain data only.

Checkpoints are loaded with ``torch.load(weights_only=True)``: a run folder shared by someone else
can never run code on this machine. Everything saved is therefore tensors, numbers, strings, and
lists/tuples/dicts of them (the numpy RNG state is converted to a tensor on the way in).
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import random
import re
from pathlib import Path

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot (or must not) be loaded; the message is one line naming the file."""


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves half a file.

    A failed write (a full disk) removes the temporary file and leaves the previous ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch's zip writer reports a failed write as a RuntimeError
        if isinstance(err.__context__, KeyboardInterrupt):  # a Ctrl-C inside the writer: the abort, not the disk
            tmp.unlink(missing_ok=True)
            raise err.__context__ from None
        full = _nearly_full(tmp.parent)
        tmp.unlink(missing_ok=True)
        code = errno.ENOSPC if full else (getattr(err, "errno", None) or errno.EIO)
        why = os.strerror(errno.ENOSPC) if full else (getattr(err, "strerror", None) or str(err).splitlines()[0][:120])
        raise OSError(code, f"cannot write checkpoint '{path}' ({why}); the previous one is kept; "
                            f"free some disk space or choose another --runs-dir") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def rng_state() -> dict:
    """Every random source's state as plain data and tensors (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(x):
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


_BLOCKED = re.compile(r"GLOBAL (\S+)")


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True``; refuse one that holds Python objects (code)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _BLOCKED.search(str(err))
        if found is None and "global" not in str(err).lower():  # no code in it: a damaged or foreign file
            raise CheckpointError(f"cannot read '{path}' as a checkpoint (not a valid PyTorch file); "
                                  f"it may be truncated or not a checkpoint") from None
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"refusing to load '{path}': it holds Python objects{what}, not only tensors and "
                              f"plain data, and loading it could run code; use a checkpoint written by trainpilot") from None
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{path}' does not exist") from None
    except (RuntimeError, EOFError, OSError) as err:
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot read '{path}' as a checkpoint ({first}); it may be truncated") from None
