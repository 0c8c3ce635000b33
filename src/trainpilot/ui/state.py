"""What the dashboard process remembers between requests: open runs (so a live run is read
incrementally), rows of the runs table until a run's files change, the processes it started, and
loaded models for Predict."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from trainpilot.runs import Run, find_run, list_runs

WATCHED = ("metrics.jsonl", "adjustments.jsonl", "decisions.jsonl", "status.json", "summary.json", "reports")


def signature(run: Run) -> tuple:
    """Changes whenever a file the dashboard shows changes (sizes and mtimes; a few stat calls)."""
    out = []
    for name in WATCHED:
        try:
            st = (run.root / name).stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def signature_key(run: Run) -> str:
    """:func:`signature` as a short string a page can hand back (``?since=``)."""
    import hashlib

    return hashlib.sha1(repr(signature(run)).encode()).hexdigest()[:16]


@dataclass
class UIState:
    runs_dir: Path
    token: str
    require_token: bool = False
    allowed_hosts: set[str] | None = None
    launched: dict[str, subprocess.Popen] = field(default_factory=dict)
    _runs: dict[str, Run] = field(default_factory=dict)
    _rows: dict[str, tuple[tuple, dict]] = field(default_factory=dict)
    _models: dict[tuple, object] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, run_id: str) -> Run:
        """The run by id (refused like an unknown id when it is a path); one Run object per id, so its
        metrics are followed incrementally."""
        fresh = find_run(self.runs_dir, run_id)
        with self.lock:
            cached = self._runs.get(run_id)
            if cached is None or cached.root != fresh.root:
                self._runs[run_id] = cached = fresh
        return cached

    def runs(self) -> list[Run]:
        listed = list_runs(self.runs_dir)
        with self.lock:
            return [self._runs.setdefault(r.id, r) for r in listed]

    def row(self, run: Run, build) -> dict:
        sig = signature(run)
        hit = self._rows.get(run.id)
        if hit is None or hit[0] != sig or run.status.state == "running":
            hit = (sig, build(run))
            self._rows[run.id] = hit
        return hit[1]

    def warm(self, build) -> None:
        """Read every run once (at start, on a background thread), so the first page is served from memory."""
        try:
            for run in self.runs():
                self.row(run, build)
        except Exception:  # noqa: BLE001 - a run that cannot be read is reported when it is asked for
            pass

    def reap(self) -> None:
        """Collect the exit status of finished child processes (no zombies)."""
        for proc in list(self.launched.values()):
            proc.poll()

    def model(self, key: tuple, load):
        with self.lock:
            if key not in self._models:
                if len(self._models) >= 4:
                    self._models.pop(next(iter(self._models)))
                self._models[key] = load()
            return self._models[key]
