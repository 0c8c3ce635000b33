"""Stopping and faults with real processes: Ctrl-C/SIGTERM, a second Ctrl-C, the run lock,
kill -9 during checkpoint writes, a full disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import TINY
from trainpilot.engine.checkpoint import load_checkpoint
from trainpilot.runs import Run

CMD = [sys.executable, "-m", "trainpilot"]
EPOCHS = 120


def sets(cfg: dict) -> list[str]:
    return [a for k, v in cfg.items() for a in ("--set", f"{k}={json.dumps(v, ensure_ascii=False)}")]


def _start(tiny_data, runs: Path, name: str, epochs: int) -> subprocess.Popen:
    cfg = {**TINY, "num_epochs": epochs, "early_stopping": False, "data_dir": str(tiny_data)}
    return subprocess.Popen([*CMD, "train", "--quiet", "--runs-dir", str(runs), "--name", name, *sets(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epoch(proc: subprocess.Popen, run_dir: Path, epoch: int = 1, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        if (status.get("epoch") or 0) >= epoch and (run_dir / "checkpoints" / "last.pt").exists():
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the run never finished its first epoch")


def _val_epochs(run_dir: Path) -> list[int]:
    return [r.epoch for r in Run.open(run_dir).rows if r.val]


@pytest.mark.parametrize("sig,code,name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_a_signal_stops_cleanly_and_the_run_resumes(sig, code, name, tiny_data, tmp_path):
    run_dir = tmp_path / "runs" / "stopme"
    # SIGTERM: long enough that it is still training when the lock check (a second process start) is done on a
    # fast CPU; Ctrl-C: short, so that the resumed run finishes soon (~0.5 s per tiny epoch)
    epochs = EPOCHS if sig == signal.SIGTERM else 12
    proc = _start(tiny_data, tmp_path / "runs", "stopme", epochs=epochs)
    _wait_for_epoch(proc, run_dir)
    if sig == signal.SIGTERM:  # while it trains, a second process may not resume the same run
        second = subprocess.run([*CMD, "train", "--resume", str(run_dir), "--quiet"], capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith("error:") and f"being trained by process {proc.pid}" in second.stderr
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "stopping after the current batch" in err and f"trainpilot train --resume {run_dir}" in err
    run = Run.open(run_dir)
    assert run.status.state == "stopped" and name in run.status.reason
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert _val_epochs(run_dir) == list(range(1, last["epoch"] + 1))  # the dropped partial epoch left no record
    assert last["epoch"] < epochs and run.summary["status"] == "stopped"
    if sig == signal.SIGINT:
        resumed = subprocess.run([*CMD, "train", "--resume", str(run_dir), "--quiet"], capture_output=True,
                                 text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        assert _val_epochs(run_dir) == list(range(1, epochs + 1)) and Run.open(run_dir).status.state == "completed"


def test_a_second_ctrl_c_aborts_at_once(tiny_data, tmp_path):
    run_dir = tmp_path / "runs" / "abort"
    proc = _start(tiny_data, tmp_path / "runs", "abort", epochs=30)
    _wait_for_epoch(proc, run_dir)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "aborted" in err and "Traceback" not in err
    status = Run.open(run_dir).status
    assert status.state == "stopped" and "aborted" in status.reason
    assert not (run_dir / "summary.json").exists()  # it did not wait for the final evaluation
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] >= 1


WRITER = textwrap.dedent("""
    import sys, torch
    from trainpilot.engine.checkpoint import atomic_save
    i = 0
    while True:
        i += 1
        atomic_save({"i": i, "w": torch.full((3_000_000,), float(i))}, sys.argv[1])
        print(i, flush=True)
""")


def test_kill_9_during_checkpoint_writes_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.pt"
    for delay in (0.0, 0.013, 0.031, 0.057):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # one write is complete; the next is under way
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ckpt = load_checkpoint(path)
        assert float(ckpt["w"][0]) == ckpt["i"] and float(ckpt["w"][-1]) == ckpt["i"]


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(where)])
    return ok


def test_a_full_disk_is_a_clear_error_and_corrupts_nothing(tiny_data, tmp_path):
    disk = tmp_path / "disk"
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root to mount a size-limited tmpfs (the ENOSPC path is also covered in test_checkpoint)")
    # room for epoch 1's last.pt (~9.5 MB) and best.pt (~2.4 MB), not for epoch 2's last.pt next to them
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    try:
        cfg = {**TINY, "num_epochs": 3, "early_stopping": False, "data_dir": str(tiny_data)}
        result = subprocess.run([*CMD, "train", "--quiet", "--runs-dir", str(disk), "--name", "full", *sets(cfg)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        err = result.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: cannot write checkpoint") and "No space left" in err[0]
        run_dir = disk / "full"
        assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
        assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp" in p.name]
        run = Run.open(run_dir)
        assert run.status.state == "crashed" and "No space left" in run.status.reason
        assert [r.epoch for r in run.rows] == [1, 2]
    finally:
        subprocess.run(["umount", "-l", str(disk)])
