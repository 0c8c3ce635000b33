"""The one place where settings change while a run is live.

Every change the tuning controller makes (and every rollback) goes through here, so the optimizer's
param groups, the lr schedule's peak, the loss (class weights, smoothing), mixup, dropout,
augmentation, clipping, accumulation and EMA can never disagree with the config.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from timm.data import Mixup

from trainpilot.config import TrainConfig, build_config
from trainpilot.data.weights import compute_class_weights
from trainpilot.engine.loss import ClassificationLoss
from trainpilot.engine.optim import LRSchedule, build_optimizer, set_weight_decay
from trainpilot.models import set_dropout

if TYPE_CHECKING:
    from trainpilot.engine.trainer import Trainer

# the keys the schema marks tunable="restart": applied by a warm restart over the remaining epochs
RESTART_KEYS = tuple(k for k, f in TrainConfig.model_fields.items()
                     if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("tunable") == "restart")
SCHEDULE_KEYS = ("num_epochs", "gradient_accumulation_enabled", "gradient_accumulation_steps")


@dataclass
class ApplyResult:
    """How :func:`apply_live_changes` made changes take effect.

    ``restart``: the keys applied by a warm restart (empty when everything was live);
    ``ramp_epochs``: epochs the restart's lr ramp takes, after which a change can be judged;
    ``notes``: one sentence per change for the adjustment report.
    """

    notes: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    ramp_epochs: int = 0


def resolve_class_weights(cfg: TrainConfig, counts: list[int], classes: list[str]) -> dict[str, float] | None:
    """The class weights the loss will use, computed from the training counts (None when off)."""
    if not cfg.use_class_weights:
        return cfg.class_weights
    return compute_class_weights(counts, classes, cfg.weight_strategy, cfg.class_weights)


def rebuild_loss_and_mixup(tr: "Trainer") -> None:
    """Loss and mixup from the current config; class weights are recomputed from the data."""
    cfg = tr.cfg
    weights = None
    if cfg.use_class_weights:
        mapping = resolve_class_weights(cfg, tr.data.train_counts(), tr.class_names)
        if mapping != cfg.class_weights:
            cfg.class_weights = mapping
        weights = torch.tensor([mapping[c] for c in tr.class_names], dtype=torch.float32, device=tr.device)
    smoothing = cfg.label_smoothing if cfg.label_smoothing_enabled else 0.0
    tr.loss_fn = ClassificationLoss(weights, smoothing).to(tr.device)
    tr.mixup = None
    if cfg.advanced_augmentation_enabled:
        tr.mixup = Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.mixup_alpha, switch_prob=cfg.cutmix_prob,
                         label_smoothing=smoothing, num_classes=len(tr.class_names))


def _fast_forward(schedule: LRSchedule, epochs_done: int, steps_per_epoch: int) -> None:
    """Bring a fresh schedule to the point ``epochs_done`` epochs into the run (its shape only)."""
    for _ in range(epochs_done):
        for _ in range(steps_per_epoch):
            schedule.after_optimizer_step()
        schedule.after_epoch(None)


def rebuild_schedule(tr: "Trainer", keep_progress: bool) -> None:
    """A new schedule for the current config: continuing where the old one was, or (warm restart)
    spanning only the epochs that remain."""
    spe = tr.steps_per_epoch()
    if keep_progress:
        peak = tr.schedule.peak_lr
        tr.schedule = LRSchedule(tr.cfg, spe, tr.cfg.num_epochs)
        _fast_forward(tr.schedule, tr.epoch, spe)
        tr.schedule.set_peak_lr(peak)
    else:
        # a new peak lr (and maybe a fresh optimizer state) at once jolts the weights: ramp up over >= one epoch
        tr.schedule = LRSchedule(tr.cfg, spe, max(1, tr.cfg.num_epochs - tr.epoch), min_warmup=spe)


def _sync_modules(tr: "Trainer") -> None:
    cfg = tr.cfg
    set_dropout(tr.model, cfg.dropout_rate)
    tr.augment.enabled = cfg.use_augmentation
    if tr.ema is not None:
        tr.ema.decay = cfg.model_ema_decay
    rebuild_loss_and_mixup(tr)


def restart_keys(cfg: TrainConfig, changes: dict[str, Any]) -> list[str]:
    """The keys in ``changes`` that need a warm restart (they differ from ``cfg``)."""
    return [k for k in RESTART_KEYS if k in changes and changes[k] != getattr(cfg, k)]


def apply_live_changes(tr: "Trainer", changes: dict[str, Any]) -> ApplyResult:
    """Apply ``changes`` (already validated by the action schema) at an epoch boundary.

    Returns how the changes took effect (:class:`ApplyResult`). Structural keys (batch_size,
    optimizer, lr_scheduler) are applied by a warm restart: a new schedule over the remaining epochs
    (and a new optimizer for a new optimizer type), starting from the current weights, never from scratch.
    """
    old = tr.cfg
    tr.cfg = build_config({**old.to_dict(), **changes})
    if changes.get("use_class_weights") and "class_weights" not in changes:
        tr.cfg.class_weights = None  # recompute from the data instead of keeping stale values
    notes = []
    restart = restart_keys(old, changes)
    # a new optimizer only for a new optimizer type: a fresh Adam state takes full-size steps in every
    # coordinate at once, so a batch size or schedule change keeps the moments it has learned
    fresh = "optimizer" in restart
    if fresh:
        tr.optimizer = build_optimizer(tr.model, tr.cfg)
    elif "weight_decay" in changes:
        set_weight_decay(tr.optimizer, tr.cfg.weight_decay)
    if restart:
        rebuild_schedule(tr, keep_progress=False)
        notes.append(f"warm restart from the current weights for {', '.join(restart)}: "
                     f"{'new optimizer' if fresh else 'optimizer state kept'}, {tr.cfg.lr_scheduler} schedule over "
                     f"the remaining {tr.cfg.num_epochs - tr.epoch} epochs, warming up over {tr.schedule.warmup} steps")
    else:
        if any(k in changes for k in SCHEDULE_KEYS):
            rebuild_schedule(tr, keep_progress=True)
            notes.append("lr schedule re-planned for the new number of optimizer steps")
        if "learning_rate" in changes:
            tr.schedule.set_peak_lr(tr.cfg.learning_rate)
            notes.append(f"peak lr set to {tr.cfg.learning_rate:g}; the schedule's shape continues from its current point")
    _sync_modules(tr)
    if tr.cfg.use_class_weights and tr.cfg.class_weights:
        notes.append("class weights in use: " + ", ".join(f"{k}={v:g}" for k, v in tr.cfg.class_weights.items()))
    ramp = math.ceil(tr.schedule.warmup / max(1, tr.steps_per_epoch())) if restart else 0
    return ApplyResult(notes=notes, restart=restart, ramp_epochs=ramp)


def restore_config(tr: "Trainer", config: dict[str, Any]) -> None:
    """Put the config of a snapshot back; rebuild optimizer/schedule objects if their type changed."""
    old = tr.cfg
    tr.cfg = build_config(config)
    if any(getattr(old, k) != getattr(tr.cfg, k) for k in RESTART_KEYS + SCHEDULE_KEYS):
        tr.optimizer = build_optimizer(tr.model, tr.cfg)
        tr.schedule = LRSchedule(tr.cfg, tr.steps_per_epoch(), tr.cfg.num_epochs)
    _sync_modules(tr)
