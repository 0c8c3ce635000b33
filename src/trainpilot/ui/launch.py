"""Start, stop and resume runs from the dashboard: `trainpilot train` as a child process.

The dashboard holds no training logic: Start runs the same command a person would type, Stop sends
the run's process the SIGTERM that `trainpilot train` turns into a clean stop after the current batch
(last.pt stays the resume point), and Resume runs `trainpilot train --resume`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainpilot.runs import Run

LOG_DIR = ".ui"  # under the runs folder; list_runs skips dot folders


class LaunchError(ValueError):
    """A start, stop or resume that cannot be done (one line)."""


def _log(runs_dir: Path, name: str) -> Path:
    folder = runs_dir / LOG_DIR / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.log"


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "trainpilot", *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def start_run(runs_dir: Path, name: str, overrides: dict) -> subprocess.Popen:
    """`trainpilot train --runs-dir RUNS --name NAME --set key=value ...` for the keys the form changed."""
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v, ensure_ascii=False)}")]
    return _spawn(["train", "--quiet", "--runs-dir", str(runs_dir), "--name", name, *sets], _log(runs_dir, name))


def resume_run(run: Run) -> subprocess.Popen:
    state = run.status.state
    if state == "running":
        raise LaunchError(f"run '{run.id}' is still running; stop it first")
    if state == "completed":
        raise LaunchError(f"run '{run.id}' completed; start a new run to train more")
    if "last" not in run.checkpoints:
        raise LaunchError(f"run '{run.id}' has no checkpoints/last.pt to resume from (it never finished an epoch)")
    return _spawn(["train", "--quiet", "--resume", str(run.root)], _log(run.root.parent, run.id))


def _is_trainpilot(pid: int) -> bool:
    """The pid in status.json still belongs to a trainpilot process (and not to a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return sys.platform != "linux"  # no /proc: trust the status file's heartbeat check
    return b"trainpilot" in cmdline


def stop_run(run: Run) -> int:
    """Ask the run's process to stop after its current batch; returns its pid."""
    status = run.status
    if status.state != "running" or not status.pid:
        raise LaunchError(f"run '{run.id}' is not running (it is {status.state})")
    pid = int(status.pid)
    if not _is_trainpilot(pid):
        raise LaunchError(f"process {pid} of run '{run.id}' is not a trainpilot process on this machine")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise LaunchError(f"run '{run.id}': process {pid} has already ended") from None
    except PermissionError:
        raise LaunchError(f"run '{run.id}': process {pid} belongs to another user") from None
    return pid


def last_error(runs_dir: Path, name: str) -> str | None:
    """The one-line error a launched run printed before it ended, if any."""
    log = runs_dir / LOG_DIR / "logs" / f"{name}.log"
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return next((ln for ln in reversed(lines) if ln.startswith("error:")), None)


def wait_for_dir(root: Path, proc: subprocess.Popen, timeout: float = 0.0) -> bool:
    deadline = time.time() + timeout
    while True:
        if (root / "status.json").exists():
            return True
        if proc.poll() is not None or time.time() >= deadline:
            return False
        time.sleep(0.1)
