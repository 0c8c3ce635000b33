"""The one place where settings change while a run is live: :class:`LiveChanges`, mixed into the Trainer.

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
from trainpilot.data.weights import compute_class_weights, sampled_counts
from trainpilot.engine import label_filter
from trainpilot.engine.loss import ClassificationLoss
from trainpilot.engine.optim import LRSchedule, build_optimizer, set_weight_decay
from trainpilot.models import build_model, set_dropout
from trainpilot.text import Msg

if TYPE_CHECKING:
    from trainpilot.engine.trainer import Trainer


def _tunable(kind: str) -> tuple[str, ...]:
    return tuple(k for k, f in TrainConfig.model_fields.items()
                 if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("tunable") == kind)


# the keys the schema marks tunable="restart": applied by a warm restart over the remaining epochs
RESTART_KEYS = _tunable("restart")
# keys that change how many optimizer steps the run has: the schedule is re-planned, its progress kept
SCHEDULE_KEYS = ("num_epochs", "gradient_accumulation_enabled", "gradient_accumulation_steps")


@dataclass
class ApplyResult:
    """How :meth:`LiveChanges.apply_changes` made changes take effect.

    ``restart``: the keys applied by a warm restart (empty when everything was live);
    ``ramp_epochs``: epochs the restart's lr ramp takes, after which a change can be judged;
    ``notes``: one sentence per change for the adjustment record (see :mod:`trainpilot.engine.notes`).
    """

    notes: list[Msg] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    ramp_epochs: int = 0


def resolve_class_weights(cfg: TrainConfig, counts: list[int], classes: list[str]) -> dict[str, float] | None:
    """The class weights the loss will use (None when off), computed from the training counts as the
    sampler draws them: weights on top of a balancing sampler only make up what it leaves."""
    if not cfg.use_class_weights:
        return cfg.class_weights
    return compute_class_weights(sampled_counts(counts, cfg.sampler), classes, cfg.weight_strategy, cfg.class_weights)


def loss_shares(cfg: TrainConfig, counts: list[int], classes: list[str]) -> torch.Tensor:
    """How much of the loss each class makes under ``cfg``'s sampler and class weights (see
    :func:`trainpilot.priors.training_shares`)."""
    from trainpilot.priors import training_shares

    return training_shares(counts, cfg.sampler, resolve_class_weights(cfg, counts, classes), classes)


def restart_keys(cfg: TrainConfig, changes: dict[str, Any]) -> list[str]:
    """The keys in ``changes`` that need a warm restart (they differ from ``cfg``)."""
    return [k for k in RESTART_KEYS if k in changes and changes[k] != getattr(cfg, k)]


def _fast_forward(schedule: LRSchedule, epochs_done: int, steps_per_epoch: int) -> None:
    """Bring a fresh schedule to the point ``epochs_done`` epochs into the run (its shape only)."""
    for _ in range(epochs_done):
        for _ in range(steps_per_epoch):
            schedule.after_optimizer_step()
        schedule.after_epoch(None)


class LiveChanges:
    """Mixed into :class:`~trainpilot.engine.trainer.Trainer`: changes applied at an epoch boundary."""

    def rebuild_loss_and_mixup(self: "Trainer") -> None:
        """Loss and mixup from the current config; the class weights are computed here, from the data."""
        cfg = self.cfg
        weights = None
        if cfg.use_class_weights:
            mapping = resolve_class_weights(cfg, self.data.train_counts(), self.class_names)
            if mapping != cfg.class_weights:
                cfg.class_weights = mapping
            weights = torch.tensor([mapping[c] for c in self.class_names], dtype=torch.float32, device=self.device)
        smoothing = cfg.label_smoothing if cfg.label_smoothing_enabled else 0.0
        self.loss_fn = ClassificationLoss(weights, smoothing, cfg.focal_gamma).to(self.device)
        self.mixup = None
        if cfg.advanced_augmentation_enabled:
            self.mixup = Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.mixup_alpha, switch_prob=cfg.cutmix_prob,
                               label_smoothing=smoothing, num_classes=len(self.class_names))

    def load_pretrained_weights(self: "Trainer") -> Msg:
        """Switch the model onto its ImageNet weights (a new head, a fresh EMA) and their normalisation."""
        donor, info = build_model(self.cfg, len(self.class_names))
        self.model.load_state_dict(donor.state_dict())
        self.set_model_info(info)
        self.fresh_ema()
        return Msg("note.pretrained", {"weights": info["weights"]})

    def set_model_info(self: "Trainer", info: dict) -> None:
        """The model's weights source and input normalisation (they change with its weights)."""
        self.model_info = info
        self.augment.set_normalization(info["mean"], info["std"])

    def rebuild_schedule(self: "Trainer", keep_progress: bool) -> None:
        """A new schedule for the current config: continuing where the old one was, or (warm restart)
        spanning only the epochs that remain."""
        spe = self.steps_per_epoch()
        if keep_progress:
            self.schedule = LRSchedule(self.cfg, spe, self.cfg.num_epochs)
            _fast_forward(self.schedule, self.epoch, spe)
        else:
            # a new peak lr (and maybe a fresh optimizer state) at once jolts the weights: ramp up over >= one epoch
            self.schedule = LRSchedule(self.cfg, spe, max(1, self.cfg.num_epochs - self.epoch), min_warmup=spe)

    def sync_modules(self: "Trainer") -> None:
        """Dropout, augmentation, EMA decay, loss, mixup and the schedule's peak lr from the config."""
        cfg = self.cfg
        set_dropout(self.model, cfg.dropout_rate)
        self.augment.enabled = cfg.use_augmentation
        if self.ema is not None:
            self.ema.decay = cfg.model_ema_decay
        self.schedule.set_peak_lr(cfg.learning_rate)  # the config's learning_rate is the one source of the peak
        self.rebuild_loss_and_mixup()

    def apply_changes(self: "Trainer", changes: dict[str, Any], _replay: bool = False) -> ApplyResult:
        """Apply ``changes`` (already validated by the action schema) at an epoch boundary.

        Structural keys (tunable="restart" in the schema: batch_size, optimizer, lr_scheduler) are applied
        by a warm restart: a new schedule over the remaining epochs (and a new optimizer for a new optimizer
        type), starting from the current weights, never from scratch.
        """
        self._log_command("apply_changes", changes)
        old = self.cfg
        self.cfg = build_config({**old.to_dict(), **changes})
        if changes.get("use_class_weights") and "class_weights" not in changes:
            self.cfg.class_weights = None  # recompute from the data instead of keeping stale values
        notes = []
        restart = restart_keys(old, changes)
        # a new optimizer only for a new optimizer type: a fresh Adam state takes full-size steps in every
        # coordinate at once, so a batch size or schedule change keeps the moments it has learned
        fresh = "optimizer" in restart or "use_pretrained" in restart
        if "use_pretrained" in restart:
            notes.append(self.load_pretrained_weights())
        if fresh:
            self.optimizer = build_optimizer(self.model, self.cfg)
        elif "weight_decay" in changes:
            set_weight_decay(self.optimizer, self.cfg.weight_decay)
        if restart:
            self.rebuild_schedule(keep_progress=False)
            notes.append(Msg("note.restart_fresh" if fresh else "note.restart_kept",
                             {"keys": ", ".join(restart), "sched": self.cfg.lr_scheduler,
                              "n": self.cfg.num_epochs - self.epoch, "w": self.schedule.warmup}))
        else:
            if any(k in changes for k in SCHEDULE_KEYS):
                self.rebuild_schedule(keep_progress=True)
                notes.append(Msg("note.replanned"))
            if "learning_rate" in changes:
                notes.append(Msg("note.peak_lr", {"lr": f"{self.cfg.learning_rate:g}"}))
        self.sync_modules()
        if "drop_suspect_labels" in changes and (note := label_filter.refresh(self)):
            notes.append(note)
        if self.cfg.use_class_weights and self.cfg.class_weights:
            notes.append(Msg("note.class_weights", {"weights": ", ".join(f"{k}={v:g}" for k, v in self.cfg.class_weights.items())}))
        ramp = math.ceil(self.schedule.warmup / max(1, self.steps_per_epoch())) if restart else 0
        return ApplyResult(notes=notes, restart=restart, ramp_epochs=ramp)
