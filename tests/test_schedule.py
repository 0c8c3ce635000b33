"""Warmup, every scheduler, the min_lr floor, and live lr changes that no scheduler overwrites."""

from __future__ import annotations

import pytest
import torch

from trainpilot.config import SCHEDULERS, build_config
from trainpilot.engine.optim import LRSchedule, build_optimizer, set_weight_decay


def _run(schedule: LRSchedule, opt, epochs: int, spe: int, change_at=None, new_lr=None) -> list[float]:
    lrs = []
    for epoch in range(epochs):
        if change_at is not None and epoch == change_at:
            schedule.set_peak_lr(new_lr)
        for _ in range(spe):
            lrs.append(schedule.apply(opt))
            schedule.after_optimizer_step()
        schedule.after_epoch(0.5)
    return lrs


def _opt(cfg):
    return build_optimizer(torch.nn.Linear(4, 3), cfg)


def test_first_warmup_step_is_not_zero():
    cfg = build_config({"learning_rate": 1e-3, "warmup_enabled": True, "warmup_ratio": 0.1, "num_epochs": 10})
    s = LRSchedule(cfg, steps_per_epoch=10, total_epochs=10)
    lrs = _run(s, _opt(cfg), 2, 10)
    assert s.warmup == 10
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3, rel=1e-3)
    assert all(b > a for a, b in zip(lrs[:9], lrs[1:10]))


def test_cosine_warmup_and_explicit_steps():
    cfg = build_config({"learning_rate": 1e-3, "warmup_steps": 4, "warmup_method": "cosine", "lr_scheduler": "None"})
    lrs = _run(LRSchedule(cfg, 5, 2), _opt(cfg), 2, 5)
    assert 0 < lrs[0] < lrs[1] < lrs[2] < lrs[3] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_min_lr_floor_holds_for_every_scheduler(name):
    cfg = build_config({"learning_rate": 1e-2, "lr_scheduler": name, "min_lr": 5e-3, "lr_gamma": 0.01,
                        "lr_step_size": 1, "lr_patience": 0, "num_epochs": 8})
    lrs = _run(LRSchedule(cfg, 4, 8), _opt(cfg), 8, 4)
    assert min(lrs) >= 5e-3 - 1e-12


@pytest.mark.parametrize("name", SCHEDULERS)
def test_live_lr_change_is_never_overwritten_by_the_scheduler(name):
    """Changing the lr mid-run scales the rest of the schedule by exactly new/old, for every scheduler."""
    base = {"learning_rate": 1e-2, "lr_scheduler": name, "min_lr_enabled": False, "num_epochs": 6, "lr_patience": 0}
    cfg = build_config(base)
    ref = _run(LRSchedule(cfg, 3, 6), _opt(cfg), 6, 3)
    changed = _run(LRSchedule(cfg, 3, 6), _opt(cfg), 6, 3, change_at=2, new_lr=1e-3)
    assert changed[:6] == ref[:6]
    for a, b in zip(ref[6:], changed[6:]):
        assert b == pytest.approx(a * 0.1, rel=1e-9)


def test_schedule_state_round_trips():
    cfg = build_config({"lr_scheduler": "OneCycleLR", "num_epochs": 4})
    a = LRSchedule(cfg, 5, 4)
    opt = _opt(cfg)
    _run(a, opt, 2, 5)
    b = LRSchedule(cfg, 5, 4)
    b.load_state_dict(a.state_dict())
    assert _run(a, opt, 2, 5) == _run(b, opt, 2, 5)


@pytest.mark.parametrize("name,cls,check", [
    ("Adam", torch.optim.Adam, lambda g: g["betas"] == (0.8, 0.95)),
    ("AdamW", torch.optim.AdamW, lambda g: g["betas"] == (0.8, 0.95)),
    ("SGD", torch.optim.SGD, lambda g: g["momentum"] == 0.7 and g["nesterov"] is True),
    ("RMSprop", None, lambda g: g["alpha"] == 0.8 and g["momentum"] == 0.7),
    ("RAdam", None, lambda g: g["betas"] == (0.8, 0.95)),
    ("AdaBelief", None, lambda g: g["betas"] == (0.8, 0.95)),
])
def test_optimizer_keys_reach_the_param_groups(name, cls, check):
    cfg = build_config({"optimizer": name, "beta1": 0.8, "beta2": 0.95, "momentum": 0.7, "nesterov": True,
                        "learning_rate": 0.03, "weight_decay": 0.02})
    opt = _opt(cfg)
    assert cls is None or isinstance(opt, cls)
    assert name.lower() in type(opt).__name__.lower() or cls is not None
    group = opt.param_groups[0]
    assert check(group) and group["lr"] == 0.03
    decayed = [g for g in opt.param_groups if g["weight_decay"] > 0]
    assert decayed and all(g["weight_decay"] == 0.02 for g in decayed)
    set_weight_decay(opt, 0.5)
    assert all(g["weight_decay"] in (0.0, 0.5) for g in opt.param_groups) and any(g["weight_decay"] == 0.5 for g in opt.param_groups)
