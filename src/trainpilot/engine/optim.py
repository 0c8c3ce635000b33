"""Optimizer and learning-rate schedule: built once, changed live, saved in checkpoints.

The lr of every step is ``max(min_lr, peak_lr * warmup(step) * shape)``, where ``shape`` comes
from PyTorch's own scheduler classes driving a one-parameter "unit" optimizer whose lr starts at
1.0. Keeping the scheduler away from the real param groups means a live change of ``peak_lr``
can never be silently overwritten by a scheduler, warmup is per optimizer step (so the first step
is never at lr 0), and ``min_lr`` is one floor for every scheduler.
"""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2

from trainpilot.config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """timm's optimizer factory; biases and norm weights get no weight decay."""
    name = cfg.optimizer
    kwargs: dict = {}
    if name in ("Adam", "AdamW", "RAdam", "AdaBelief"):
        opt = name.lower()
        kwargs["betas"] = (cfg.beta1, cfg.beta2)
    elif name == "SGD":
        opt = "nesterov" if cfg.nesterov else "momentum"  # timm's plain "sgd" means nesterov
        kwargs["momentum"] = cfg.momentum
    else:  # RMSprop
        opt = "rmsprop"
        kwargs.update(momentum=cfg.momentum, alpha=cfg.beta1)
    return create_optimizer_v2(model, opt=opt, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, **kwargs)


def set_weight_decay(optimizer: torch.optim.Optimizer, wd: float) -> None:
    """Change decay on the decayed groups only (the no-decay group stays at 0)."""
    for group in optimizer.param_groups:
        if group.get("weight_decay", 0.0) > 0.0 or group.get("_decayed", False):
            group["weight_decay"] = wd
            group["_decayed"] = True


class LRSchedule:
    """Per-optimizer-step learning rate with warmup, a PyTorch scheduler shape and a floor.

    Args:
        cfg: reads learning_rate, lr_scheduler (+ lr_step_size, lr_gamma, lr_patience),
            warmup_*, min_lr_enabled/min_lr.
        steps_per_epoch: optimizer steps per epoch (after gradient accumulation).
        total_epochs: epochs the shape spans (num_epochs, or the remaining ones after a warm restart).
    """

    PER_STEP = ("CosineAnnealingLR", "OneCycleLR", "CyclicLR")

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, total_epochs: int, start_step: int = 0,
                 min_warmup: int = 0):
        self.peak_lr = cfg.learning_rate
        self.name = cfg.lr_scheduler
        self.min_lr = cfg.min_lr if cfg.min_lr_enabled else 0.0
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total_steps = self.steps_per_epoch * max(1, total_epochs)
        self.start_step = start_step
        self.step_count = 0  # optimizer steps taken under this schedule
        if not cfg.warmup_enabled or self.name == "OneCycleLR":  # OneCycle has its own warm-up phase
            self.warmup = 0
        elif cfg.warmup_steps > 0:
            self.warmup = min(cfg.warmup_steps, self.total_steps)
        else:
            self.warmup = min(self.total_steps, math.ceil(cfg.warmup_ratio * self.total_steps))
        if self.name != "OneCycleLR":
            self.warmup = max(self.warmup, min(min_warmup, self.total_steps))
        self.warmup_method = cfg.warmup_method
        self._unit = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        self._sched = self._make_shape(cfg)
        self._unit.step()  # no gradient, so a no-op; it tells PyTorch the optimizer/scheduler order is fine

    def _make_shape(self, cfg: TrainConfig):
        s, epochs = torch.optim.lr_scheduler, max(1, self.total_steps // self.steps_per_epoch)
        step_size = cfg.lr_step_size or max(1, epochs // 3)
        gamma = cfg.lr_gamma
        floor = self.min_lr / self.peak_lr if self.peak_lr > 0 else 0.0
        if self.name == "StepLR":
            return s.StepLR(self._unit, step_size=step_size, gamma=gamma or 0.1)
        if self.name == "MultiStepLR":
            return s.MultiStepLR(self._unit, milestones=list(range(step_size, epochs, step_size)), gamma=gamma or 0.1)
        if self.name == "ExponentialLR":
            # gamma 0 means "decay to ~1% of the peak over the run"
            return s.ExponentialLR(self._unit, gamma=gamma or 0.01 ** (1.0 / epochs))
        if self.name == "ReduceLROnPlateau":
            return s.ReduceLROnPlateau(self._unit, mode="max", factor=gamma or 0.1, patience=cfg.lr_patience)
        if self.name == "CosineAnnealingLR":
            return s.CosineAnnealingLR(self._unit, T_max=max(1, self.total_steps - self.warmup), eta_min=min(floor, 1.0))
        if self.name == "OneCycleLR":
            return s.OneCycleLR(self._unit, max_lr=1.0, total_steps=self.total_steps + 1,
                                pct_start=max(0.01, cfg.warmup_ratio if cfg.warmup_enabled else 0.3))
        if self.name == "CyclicLR":
            return s.CyclicLR(self._unit, base_lr=0.1, max_lr=1.0, step_size_up=2 * self.steps_per_epoch)
        return None  # "None": constant after warmup

    @property
    def shape(self) -> float:
        return self._unit.param_groups[0]["lr"] if self._sched is not None else 1.0

    def warmup_factor(self) -> float:
        if self.step_count >= self.warmup:
            return 1.0
        t = (self.step_count + 1) / self.warmup  # the first step gets a non-zero lr
        return t if self.warmup_method == "linear" else 0.5 * (1.0 - math.cos(math.pi * t))

    def current_lr(self) -> float:
        return max(self.min_lr, self.peak_lr * self.warmup_factor() * self.shape)

    def apply(self, optimizer: torch.optim.Optimizer) -> float:
        lr = self.current_lr()
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def after_optimizer_step(self) -> None:
        self.step_count += 1
        if self._sched is not None and self.name in self.PER_STEP and self.step_count > self.warmup:
            if self.step_count - self.warmup < self.total_steps:
                self._sched.step()

    def after_epoch(self, monitor_value: float | None) -> None:
        if self._sched is None or self.name in self.PER_STEP:
            return
        if self.name == "ReduceLROnPlateau":
            if monitor_value is not None and math.isfinite(monitor_value):
                self._sched.step(monitor_value)
        else:
            self._sched.step()

    def set_peak_lr(self, lr: float) -> None:
        """Live lr change: the shape keeps its progress, the peak it multiplies moves."""
        self.peak_lr = lr

    def state_dict(self) -> dict:
        """The shape and progress; the peak lr is not here: it is the config's learning_rate."""
        return {"step_count": self.step_count, "warmup": self.warmup,
                "total_steps": self.total_steps, "start_step": self.start_step,
                "sched": self._sched.state_dict() if self._sched is not None else None,
                "unit_lr": self._unit.param_groups[0]["lr"]}

    def load_state_dict(self, state: dict) -> None:
        self.step_count, self.warmup = state["step_count"], state["warmup"]  # an older "peak_lr" is ignored
        self.total_steps, self.start_step = state["total_steps"], state["start_step"]
        if self._sched is not None and state["sched"] is not None:
            self._sched.load_state_dict(state["sched"])
        self._unit.param_groups[0]["lr"] = state["unit_lr"]
