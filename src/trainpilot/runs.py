"""The run store: the one reader of run directories.

``list_runs(runs_dir)`` finds runs; ``Run.open(path)`` opens one and exposes its config, classes and
counts, typed epoch rows, adjustments (the latest state of each), decisions, summary, reports,
checkpoints and status. Only the engine, the controller and the decision commands write to a run
directory; everything else (reports, the CLI) reads it through here.

A reader follows a live run: ``metrics.jsonl`` is read incrementally (from the offset reached last
time; a half-written last line waits for its newline), and the status file's pid and heartbeat tell
a running run from a crashed one.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from trainpilot.engine.events import AdjustmentStatus, EpochRow, epoch_rows
from trainpilot.jsonio import read_jsonl

STATES = ("running", "completed", "stopped", "crashed", "pruned")
STALE_HEARTBEAT_S = 3600.0  # another host's run without a heartbeat for this long is taken as crashed


class RunStoreError(ValueError):
    """A folder that is not (or no longer) a readable run directory; one line naming it and the fix."""


@dataclass(frozen=True)
class RunStatus:
    """``state`` is one of :data:`STATES`; ``reason`` is a sentence a person can read."""

    state: str
    reason: str = ""
    pid: int | None = None
    epoch: int | None = None
    started_at: float | None = None
    heartbeat: float | None = None


class MetricsFollower:
    """Reads a growing JSONL file incrementally: each :meth:`poll` returns only the new complete lines.

    A last line without its newline is still being written and is read on a later poll; a line that
    does not parse is skipped. A file replaced or shortened (a resumed run drops re-run epochs) is
    read again from its start.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.records: list[dict] = []
        self._inode: int | None = None

    def poll(self) -> list[dict]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if st.st_ino != self._inode or st.st_size < self.offset:
            self._inode, self.offset, self.records = st.st_ino, 0, []
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(st.st_size - self.offset)
        end = chunk.rfind(b"\n") + 1  # everything after the last newline is a line still being written
        self.offset += end
        new = []
        for line in chunk[:end].splitlines():
            try:
                obj = json.loads(line.decode("utf-8", errors="replace"))
            except ValueError:
                continue
            if isinstance(obj, dict):
                new.append(obj)
        self.records += new
        return new


def latest_adjustments(records: Iterable[dict]) -> list[dict]:
    """The latest version of each adjustment (a later line with the same ``adj_id`` wins),
    ordered by epoch, then creation time."""
    latest: dict[str, dict] = {}
    for i, rec in enumerate(records or []):
        if not isinstance(rec, dict):
            continue
        key = str(rec.get("adj_id") or f"#{i}")
        latest.pop(key, None)
        latest[key] = rec

    def order(rec: dict):
        try:
            epoch = float(rec.get("epoch"))
        except (TypeError, ValueError):
            epoch = float("inf")
        return (epoch, str(rec.get("created_at") or ""))

    return sorted(latest.values(), key=order)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Run:
    """One run directory, read lazily; use :meth:`open` to get one with its layout checked."""

    MARKERS = ("metrics.jsonl", "config.resolved.json", "run.json", "status.json", "checkpoints")

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._metrics = MetricsFollower(self.root / "metrics.jsonl")
        self._rows: tuple[int, list[EpochRow]] = (-1, [])

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        root = Path(path).expanduser()
        if not root.is_dir():
            raise RunStoreError(f"run directory '{root}' does not exist; give runs/<session_id>")
        if not any((root / m).exists() for m in cls.MARKERS):
            raise RunStoreError(f"'{root}' is not a trainpilot run directory (no metrics.jsonl, "
                                f"config.resolved.json or checkpoints/); give runs/<session_id>")
        return cls(root)

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r})"

    # -- files ------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.root.name

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config as written (``{}`` for a run that has not written it yet)."""
        return _read_json(self.root / "config.resolved.json") or {}

    def train_config(self):
        """The config as a validated :class:`~trainpilot.config.TrainConfig`."""
        from trainpilot.config import ConfigError, build_config

        data = {k: v for k, v in self.config.items() if k != "model_name_resolved"}
        if not data:
            raise RunStoreError(f"'{self.root}' has no config.resolved.json; it is not a complete trainpilot run")
        try:
            return build_config(data)
        except ConfigError as err:
            raise RunStoreError(f"the config of '{self.root}' does not validate with this trainpilot "
                                f"(written by another version?): {err}") from None

    @property
    def info(self) -> dict[str, Any]:
        """run.json: classes, counts, data layout, model, skipped files."""
        return _read_json(self.root / "run.json") or {}

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.info.get("classes") or next(
            (r.class_names for r in reversed(self.rows) if r.class_names), [])]

    @property
    def train_counts(self) -> list[int]:
        return [int(c) for c in self.info.get("train_counts") or []]

    @property
    def val_count(self) -> int | None:
        return self.info.get("val_count")

    @property
    def records(self) -> list[dict]:
        """Every metrics.jsonl record so far (read incrementally)."""
        self._metrics.poll()
        return self._metrics.records

    @property
    def rows(self) -> list[EpochRow]:
        records = self.records
        if self._rows[0] != len(records) or self._metrics.offset == 0:
            self._rows = (len(records), epoch_rows(records))
        return self._rows[1]

    def poll(self) -> list[dict]:
        """The metrics records written since the last read."""
        return self._metrics.poll()

    @property
    def adjustments(self) -> list[dict]:
        return latest_adjustments(read_jsonl(self.root / "adjustments.jsonl"))

    def adjustment(self, adj_id: str) -> dict | None:
        return next((a for a in self.adjustments if a.get("adj_id") == adj_id), None)

    @property
    def decisions(self) -> list[dict]:
        return read_jsonl(self.root / "decisions.jsonl")

    def decision(self, adj_id: str) -> dict | None:
        """The decision recorded for an adjustment (the first one: a proposal is decided once), or None."""
        return next((d for d in self.decisions if d.get("adj_id") == adj_id), None)

    @property
    def summary(self) -> dict | None:
        return _read_json(self.root / "summary.json")

    @property
    def reports(self) -> list[Path]:
        folder = self.root / "reports"
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    @property
    def evaluations(self) -> dict[str, dict]:
        """split -> the evaluation of best.pt written at the end of training (or by `trainpilot evaluate`)."""
        folder = self.root / "reports"
        out = {}
        for p in sorted(folder.glob("evaluation_*.json")) if folder.is_dir() else []:
            data = _read_json(p)
            if data is not None:
                out[p.stem.removeprefix("evaluation_")] = data
        return out

    @property
    def suspect_labels(self) -> list[dict]:
        """The training images best.pt confidently calls another class (reports/suspect_labels.csv), most
        doubtful first; empty when the run has none or did not look."""
        path = self.root / "reports" / "suspect_labels.csv"
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                return [row for row in csv.DictReader(f) if row.get("file")]
        except (OSError, csv.Error, UnicodeDecodeError):
            return []

    @property
    def checkpoints(self) -> dict[str, Path]:
        """name -> path: ``last``, ``best`` and ``pre_<adj_id>`` snapshots that exist."""
        folder = self.root / "checkpoints"
        return {p.stem: p for p in sorted(folder.glob("*.pt"))} if folder.is_dir() else {}

    # -- what it means ------------------------------------------------------------------------------
    @property
    def monitor(self) -> str:
        return str(self.config.get("monitor") or "val_accuracy")

    def monitored(self, with_ema: bool = False) -> list[tuple[int, float]]:
        """(epoch, value) of the monitored metric for every epoch that has it."""
        m = self.monitor
        return [(r.epoch, v) for r in self.rows if (v := r.metric(m, with_ema)) is not None and v == v]

    def best(self) -> tuple[int, float] | None:
        """The best epoch and value of the monitored metric (lowest for val_loss), raw or EMA weights,
        as the engine chose best.pt."""
        values = self.monitored(with_ema=True)
        if not values:
            return None
        pick = min if self.monitor == "val_loss" else max
        return pick(values, key=lambda ev: ev[1])

    def adjustment_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a in self.adjustments:
            status = str(a.get("status") or "")
            counts[status] = counts.get(status, 0) + 1
        return counts

    def started_at(self) -> float | None:
        """When the run first started (the status file, else the oldest metrics record)."""
        s = _read_json(self.root / "status.json") or {}
        if s.get("started_at"):
            return float(s["started_at"])
        first = next((r.timestamp for r in self.rows if r.timestamp is not None), None)
        return first

    def duration_s(self) -> float | None:
        """Seconds spent training and validating (the epochs' own times; the gaps of a resume left out)."""
        seconds = [r.epoch_seconds for r in self.rows if r.epoch_seconds is not None]
        if seconds:
            return sum(seconds)
        s = _read_json(self.root / "status.json") or {}
        if s.get("started_at") and s.get("heartbeat"):
            return max(0.0, float(s["heartbeat"]) - float(s["started_at"]))
        return None

    @property
    def status(self) -> RunStatus:
        """running / completed / stopped / crashed / pruned, with the reason."""
        s = _read_json(self.root / "status.json")
        if s is None:
            return self._legacy_status()
        state, pid = str(s.get("state") or "crashed"), s.get("pid")
        fields = dict(pid=pid, epoch=s.get("epoch"), started_at=s.get("started_at"), heartbeat=s.get("heartbeat"))
        if state == "running":
            same_host = s.get("host") == socket.gethostname()
            beat = float(s.get("heartbeat") or 0.0)
            alive = pid_alive(int(pid)) if same_host and pid else time.time() - beat < STALE_HEARTBEAT_S
            if not alive:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(beat)) if beat else "never"
                return RunStatus("crashed", f"process {pid} ended without a final status (killed or lost power) "
                                            f"after epoch {s.get('epoch') or 0}; last heartbeat {when}", **fields)
        if state not in STATES:
            state = "crashed"
        return RunStatus(state, str(s.get("reason") or ""), **fields)

    def _legacy_status(self) -> RunStatus:
        summary = self.summary
        if summary is not None:
            reason = str(summary.get("stop_reason") or "")
            return RunStatus("completed" if reason.startswith("completed") else "stopped", reason)
        return RunStatus("crashed", "no status file and no summary.json (an older run, or one that was killed)")


def find_run(runs_dir: str | Path, run_id: str) -> Run:
    """The run named ``run_id`` directly under ``runs_dir``; an id that is a path (``../x``, ``/x``, ``a/b``),
    a hidden folder, or a symlink leading outside ``runs_dir`` is refused like an unknown one."""
    root = Path(runs_dir).expanduser().resolve()
    bad = (not run_id or run_id in (".", "..") or run_id.startswith((".", "_")) or "/" in run_id
           or "\\" in run_id or "\0" in run_id)
    if not bad:
        path = root / run_id
        real = path.resolve()
        if real.parent == root and real.is_dir() and any((real / m).exists() for m in Run.MARKERS):
            return Run(path)
    raise RunStoreError(f"no run '{run_id}' in {root}; see `trainpilot runs {root}` for the run ids")


def list_runs(runs_dir: str | Path) -> list[Run]:
    """The run directories directly under ``runs_dir``, oldest first (folders that are not runs are skipped)."""
    root = Path(runs_dir).expanduser()
    if not root.is_dir():
        raise RunStoreError(f"runs folder '{root}' does not exist; give the folder passed as --runs-dir")
    runs = []
    for d in root.iterdir():
        if d.is_dir() and not d.name.startswith((".", "_")) and any((d / m).exists() for m in Run.MARKERS):
            runs.append(Run(d))
    return sorted(runs, key=lambda r: (r.started_at() or 0.0, r.id))


__all__ = ["AdjustmentStatus", "MetricsFollower", "Run", "RunStatus", "RunStoreError", "STATES", "find_run",
           "latest_adjustments", "list_runs"]
