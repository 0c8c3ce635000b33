"""The run directory: the unit users share. Everything a report says is derivable from it.

runs/<session_id>/
  config.resolved.json   metrics.jsonl   adjustments.jsonl   run.json   status.json   summary.json
  checkpoints/last.pt, best.pt     reports/     tensorboard/
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from trainpilot.jsonio import append_jsonl, read_jsonl, write_json_atomic  # noqa: F401  (re-exported)


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
    def status(self) -> Path:
        return self.root / "status.json"

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


def new_session_id(model_name: str, runs_dir: Path, name: str | None = None) -> str:
    """<Model>_<YYYYmmdd_HHMMSS> (or ``name`` when given), with a suffix when that is taken (NAME_2, ...)."""
    if name is not None:
        if not name.strip() or name.startswith((".", "_")) or any(c in name for c in '/\\:*?"<>|'):
            raise ValueError(f"run name {name!r} cannot be a folder name; use letters, digits, '-' and '_', "
                             f"not starting with '.' or '_'")
    base = name or f"{model_name}_{time.strftime('%Y%m%d_%H%M%S')}"
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


class StatusFile:
    """``status.json``: the live process's state, pid and heartbeat, so a reader can tell a crashed run
    (the pid is gone, the state still says running) from a running one."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            old = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        self.started_at = float(old.get("started_at") or time.time())  # a resumed run keeps its start

    def write(self, state: str, reason: str = "", epoch: int | None = None) -> None:
        write_json_atomic(self.path, {"state": state, "reason": reason, "pid": os.getpid(),
                                      "host": socket.gethostname(), "started_at": self.started_at,
                                      "heartbeat": time.time(), "epoch": epoch})


class StatusSink:
    """A sink that beats the heartbeat of ``status.json`` after every epoch."""

    def __init__(self, status: StatusFile):
        self.status = status

    def emit(self, record: dict) -> None:
        if record.get("phase") == "val":
            self.status.write("running", "training", epoch=int(record["epoch"]))

    def close(self) -> None:
        pass


class RunLockedError(ValueError):
    """Another process is training this run directory."""


class RunLock:
    """An exclusive ``fcntl`` lock on ``<run>/.lock`` for as long as a process trains the run; the kernel
    drops it when the process dies, so a crashed run can be resumed at once."""

    def __init__(self, root: Path):
        self.path = Path(root) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(f"run '{self.path.parent}' is being trained by process {holder}; wait for it "
                                 f"to finish or stop it (Ctrl-C) before resuming") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
