"""Checkpoints hold plain data only: loaded with weights_only=True, a pickled callable is refused."""

from __future__ import annotations

import errno
import io
import os
import random

import numpy as np
import pytest
import torch

from trainpilot.config import SCHEDULERS, build_config
from trainpilot.engine.checkpoint import CheckpointError, atomic_save, load_checkpoint, rng_state, set_rng_state
from trainpilot.engine.optim import LRSchedule


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_checkpoint_holding_a_pickled_callable_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"model": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "refusing to load" in msg and str(path) in msg and "\n" not in msg


def test_inference_refuses_it_with_a_one_line_error(tmp_path):
    from trainpilot.inference import InferenceError, load_trained

    path = tmp_path / "best.pt"
    torch.save({"model": {}, "class_names": ["a"], "config": {}, "hook": print}, path)
    with pytest.raises(InferenceError, match="refusing to load"):
        load_trained(path)


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    atomic_save({"rng": rng_state()}, tmp_path / "r.pt")
    want = (random.random(), np.random.standard_normal(), torch.rand(1).item())
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.standard_normal(), torch.rand(1).item()) == want


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_schedule_state_loads_with_weights_only(name, tmp_path):
    cfg = build_config({"lr_scheduler": name, "num_epochs": 6})
    sched = LRSchedule(cfg, 5, 6)
    for _ in range(12):
        sched.after_optimizer_step()
    sched.after_epoch(0.5)
    atomic_save({"schedule": sched.state_dict()}, tmp_path / "s.pt")
    fresh = LRSchedule(cfg, 5, 6)
    fresh.load_state_dict(load_checkpoint(tmp_path / "s.pt")["schedule"])
    assert fresh.current_lr() == pytest.approx(sched.current_lr())


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    def full_disk(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left on device.*the previous one is kept"):
        atomic_save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_ctrl_c_inside_the_writer_is_the_abort_not_a_disk_error(tmp_path):
    """A second Ctrl-C raises KeyboardInterrupt wherever the process is; inside torch's zip writer it comes
    out as a RuntimeError ("unexpected pos") with the KeyboardInterrupt as its context."""
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    class Interrupted(io.RawIOBase):  # what a file gets while the handler raises in the middle of a write
        writes = 0

        def writable(self):
            return True

        def write(self, b):
            Interrupted.writes += 1
            if Interrupted.writes == 3:
                raise KeyboardInterrupt
            return len(b)

    real = torch.save
    with pytest.raises(KeyboardInterrupt):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch, "save", lambda obj, f, *a, **k: real(obj, Interrupted()))
            atomic_save({"epoch": 2, "w": torch.zeros(1000)}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)
