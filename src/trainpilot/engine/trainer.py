"""The training loop: one optimizer step per accumulation window, no host syncs inside an epoch.

Per-epoch statistics (loss, accuracy, gradient norms, non-finite steps) are accumulated as device
tensors and read once at the epoch's end. Each epoch reseeds every random source from
``(seed, epoch, rank)``, so a run resumed from a checkpoint replays the same epochs.

Between epochs, hooks (the tuning controller) see the history and may change settings through
:meth:`Trainer.apply_changes`, take and restore snapshots, or stop the run. Under torchrun those
calls run on rank 0 and are replayed on the other ranks, so every process stays identical.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from typing import Any, Protocol

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, Subset

from trainpilot.config import TrainConfig
from trainpilot.data.augment import BatchAugment
from trainpilot.data.images import Geometry
from trainpilot.data.prepare import PreparedData, SplitData
from trainpilot.data.weights import sampling_weights
from trainpilot.engine import label_filter
from trainpilot.engine.live import LiveChanges, loss_shares
from trainpilot.engine.budget import epochs_that_fit, recent_epoch_seconds
from trainpilot.engine.dist import DistContext
from trainpilot.engine.events import last_val_record
from trainpilot.engine.metrics import confusion_matrix, monitor_value, summarize
from trainpilot.engine.optim import LRSchedule, build_optimizer
from trainpilot.engine.precision import Precision
from trainpilot.engine.state import TrainerState
from trainpilot.priors import prior_bias
from trainpilot.text import Msg


EMA_EVERY = 4  # optimizer steps per EMA update (with decay**4): the same average for a quarter of the cost


class SparseEma(ModelEmaV3):
    """timm's ModelEmaV3, updated every ``every`` optimizer steps with its per-step decay raised to ``every``."""

    def __init__(self, model: torch.nn.Module, every: int = EMA_EVERY, **kwargs):
        super().__init__(model, **kwargs)
        self.every = every

    def get_decay(self, step: int | None = None) -> float:
        return super().get_decay(step) ** self.every


class EpochHook(Protocol):
    """Something that watches epochs and may change the run between them (e.g. the tuning controller)."""

    def on_epoch_end(self, trainer: "Trainer", epoch: int) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class Trainer(LiveChanges, TrainerState):
    """Trains ``model`` on ``data`` according to ``cfg``; see :func:`trainpilot.api.train` to build one.

    Live changes (:meth:`apply_changes`) come from :class:`LiveChanges`; the state it saves, restores and
    snapshots (:meth:`state_dict`, :meth:`load_state_dict`, :meth:`snapshot`, :meth:`restore`) from
    :class:`TrainerState`."""

    def __init__(self, cfg: TrainConfig, data: PreparedData, model: torch.nn.Module, model_info: dict,
                 device: torch.device, precision: Precision, dist: DistContext, session_id: str,
                 sinks: list | None = None, hooks: list | None = None, progress=None):
        self.cfg, self.data, self.device, self.precision, self.dist = cfg, data, device, precision, dist
        self.session_id, self.model_info = session_id, model_info
        self.class_names = data.classes
        self.sinks, self.hooks, self.progress = sinks or [], hooks or [], progress
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format)
        self.ddp = DDP(self.model, device_ids=[device.index] if device.type == "cuda" else None) if dist.enabled else None
        self.forward_model = self.ddp or self.model
        if cfg.compile:
            self.forward_model = torch.compile(self.forward_model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        geo = Geometry.of(cfg)
        self.augment = BatchAugment(model_info["mean"], model_info["std"], size=(geo.height, geo.width),
                                    enabled=cfg.use_augmentation, scale=(cfg.crop_scale_min, 1.0), jitter=cfg.color_jitter,
                                    rotation=cfg.rotation_degrees)
        self.ema = SparseEma(self.model, decay=cfg.model_ema_decay, use_warmup=True) if cfg.model_ema else None
        # The weights the run starts from (a seeded init, so a resumed run rebuilds the same ones): the last
        # known-good state of a run that collapsed before it learned anything.
        self.initial_weights = ({k: v.detach().clone() for k, v in self.model.state_dict().items()}
                                if cfg.intelligent_training.enabled else None)
        self.epoch, self.global_step = 0, 0
        self.history: list[dict] = []
        self.best = {"value": -math.inf, "epoch": 0, "source": "raw"}
        self.bad_epochs = 0
        self.stop_reason: str | None = None
        self.stop_status = "stopped"  # what a stop_reason means for the run's status: stopped or pruned
        self.interrupt: str | None = None  # set by a signal handler: stop after the current batch
        self._commands: list[tuple[str, Any]] = []
        self.budget_notes: list[str] = []
        self.budget_cap = 0  # the most epochs time_budget_minutes may plan for (see _fit_time_budget)
        self.label_filter = label_filter.LabelFilter()
        self.filter_notes: list[str] = []
        self.optimizer = build_optimizer(self.model, cfg)
        self.schedule = LRSchedule(cfg, self.steps_per_epoch(), cfg.num_epochs)
        self.rebuild_loss_and_mixup()

    # -- sizes ---------------------------------------------------------------------------------
    def local_train_size(self) -> int:
        return math.ceil(len(self.data.train) / self.dist.world_size)

    def batches_per_epoch(self) -> int:
        n, bs = self.local_train_size(), self.cfg.batch_size
        return max(1, n // bs) if n >= bs else 1

    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch() / self.cfg.accumulation_steps)

    # -- seeding and batches ---------------------------------------------------------------------
    def _seed_epoch(self, epoch: int) -> None:
        seed = (self.cfg.seed * 1_000_003 + epoch * 7919 + self.dist.rank) % 2**31
        random.seed(seed)
        np.random.seed(seed)  # timm's Mixup draws from numpy
        torch.manual_seed(seed)
        self.augment.generator.manual_seed(seed + 1)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's image indices for ``epoch``, the same on every rank before it takes its share: a seeded
        shuffle, or class-aware draws with replacement (``sampler``); with a label filter, from the kept images
        only (shuffled passes over them for shuffle), with the usual number of images per epoch."""
        split, world, keep = self.data.train, self.dist.world_size, self.label_filter.keep
        if self.cfg.sampler == "shuffle" and keep is None:
            sampler = DistributedSampler(range(len(split)), num_replicas=world, rank=self.dist.rank,
                                         shuffle=True, seed=self.cfg.seed, drop_last=False)
            sampler.set_epoch(epoch)
            return torch.tensor(list(sampler), dtype=torch.long)
        total = self.local_train_size() * world
        pool = torch.arange(len(split)) if keep is None else torch.nonzero(keep).flatten()
        gen = torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + epoch * 7919) % 2**31)
        if self.cfg.sampler == "shuffle":
            passes = -(-total // len(pool))
            order = torch.cat([pool[torch.randperm(len(pool), generator=gen)] for _ in range(passes)])[:total]
        else:
            weights = sampling_weights(split.labels[pool], len(self.class_names), self.cfg.sampler)
            order = pool[torch.multinomial(weights, total, replacement=True, generator=gen)]
        return order[self.dist.rank::world]

    def _train_batches(self, epoch: int):
        split = self.data.train
        order = self._epoch_order(epoch)
        bs, n_batches = self.cfg.batch_size, self.batches_per_epoch()
        chunks = [order[i * bs:(i + 1) * bs] for i in range(n_batches)] if len(order) >= bs else [order]
        if split.cached:
            for idx in chunks:
                yield split.images[idx], split.labels[idx]
        else:
            loader = DataLoader(Subset(split.stream, torch.cat(chunks).tolist()), batch_size=bs,
                                num_workers=self.cfg.num_workers, shuffle=False, drop_last=False)
            yield from loader

    def _eval_batches(self, split: SplitData, shard: bool = True):
        """Batches of ``split`` in order: this rank's share, or (``shard=False``) all of it."""
        idx = torch.arange(self.dist.rank, len(split), self.dist.world_size) if shard else torch.arange(len(split))
        bs = self.cfg.batch_size * 2
        if split.cached:
            for i in range(0, len(idx), bs):
                j = idx[i:i + bs]
                yield split.images[j], split.labels[j]
        else:
            yield from DataLoader(Subset(split.stream, idx.tolist()), batch_size=bs, num_workers=self.cfg.num_workers)

    # -- one epoch -------------------------------------------------------------------------------
    def train_one_epoch(self, epoch: int) -> dict:
        cfg, dev = self.cfg, self.device
        self.model.train()
        self._seed_epoch(epoch)
        accum, n_batches = cfg.accumulation_steps, self.batches_per_epoch()
        zero = lambda: torch.zeros((), device=dev)  # noqa: E731
        loss_sum, correct, seen, gn_sum, gn_max, nonfinite = zero(), zero(), zero(), zero(), zero(), zero()
        steps = 0
        lr = self.schedule.apply(self.optimizer)
        scaler = self.precision.scaler
        start = time.perf_counter()
        if self.progress:
            self.progress.start_phase(f"epoch {epoch}/{cfg.num_epochs} train", n_batches)
        for i, (x_u8, y) in enumerate(self._train_batches(epoch)):
            x_u8, y = x_u8.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            x = self.augment(x_u8, memory_format=self.memory_format)
            target = y
            if self.mixup is not None and x.shape[0] % 2 == 0:
                x, target = self.mixup(x, y)
            last_micro = (i + 1) % accum == 0 or i + 1 == n_batches
            sync = self.ddp.no_sync() if (self.ddp is not None and not last_micro) else contextlib.nullcontext()
            with sync, self.precision.autocast(dev):
                logits = self.forward_model(x)
                loss = self.loss_fn(logits, target)
            (scaler.scale(loss / accum) if scaler else loss / accum).backward()
            with torch.no_grad():
                loss_sum += loss.detach().float() * y.shape[0]
                correct += (logits.detach().argmax(1) == y).sum()
                seen += y.shape[0]
                nonfinite += (~torch.isfinite(loss.detach())).float()
            if last_micro:
                lr = self.schedule.apply(self.optimizer)
                norm = self._optimizer_step(scaler)
                gn_sum += torch.nan_to_num(norm, nan=0.0, posinf=0.0)
                gn_max = torch.maximum(gn_max, torch.nan_to_num(norm, nan=0.0, posinf=1e30))
                steps += 1
            if self.progress:
                self.progress.advance()
            if self.interrupt is not None:
                break
        for t in (loss_sum, correct, seen, gn_sum, nonfinite):
            self.dist.all_reduce_sum(t)
        seconds = time.perf_counter() - start
        n = max(1.0, seen.item())
        left_out = {"left_out": self.label_filter.left_out} if self.label_filter.keep is not None else {}
        return {"phase": "train", "loss": loss_sum.item() / n, "accuracy": correct.item() / n, "lr": lr,
                "images_per_s": n / seconds, "epoch_seconds": seconds, "steps": steps,
                "grad_norm_mean": gn_sum.item() / max(1, steps * self.dist.world_size),
                "grad_norm_max": gn_max.item(), "nonfinite_steps": int(nonfinite.item()), **left_out}

    def _optimizer_step(self, scaler) -> torch.Tensor:
        cfg = self.cfg
        if scaler:
            scaler.unscale_(self.optimizer)
        if cfg.gradient_clipping:
            norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.gradient_clipping_value, foreach=True)
        else:  # the norm is still wanted: the per-epoch gradient statistics feed the diagnosis
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None], foreach=True)
        if scaler:
            scaler.step(self.optimizer)
            scaler.update(self.precision.static_scale)
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        self.schedule.after_optimizer_step()
        if self.ema is not None and self.global_step % self.ema.every == 0:
            self.ema.update(self.model, step=self.global_step)
        return norm.detach()

    def prior_bias(self) -> torch.Tensor | None:
        """The logit bias that takes the training class prior out of the scores at tau 1 (see
        :mod:`trainpilot.priors`), for the sampler and class weights in effect now; None when the classes reach
        the loss equally often or logit_adjustment is off."""
        if self.cfg.logit_adjustment == "off":
            return None
        bias = prior_bias(loss_shares(self.cfg, self.data.train_counts(), self.class_names))
        return None if bias is None else bias.float().to(self.device)

    @torch.inference_mode()
    def evaluate(self, module: torch.nn.Module, split: SplitData, bias: torch.Tensor | None = None) -> dict:
        """Loss and metrics of ``module`` on ``split`` (reduced across ranks). With a prior ``bias``, also
        ``prior_corrected``: the metrics of the scores plus that bias, as best.pt's logit adjustment gives them."""
        module.eval()
        k = len(self.class_names)
        loss_sum = torch.zeros((), device=self.device)
        cm = torch.zeros((k, k), dtype=torch.long, device=self.device)
        cm_corrected = torch.zeros((k, k), dtype=torch.long, device=self.device) if bias is not None else None
        for x_u8, y in self._eval_batches(split):
            x_u8, y = x_u8.to(self.device), y.to(self.device)
            x = self.augment.normalize(x_u8, memory_format=self.memory_format)
            with self.precision.autocast(self.device):
                logits = module(x).float()
            loss_sum += torch.nn.functional.cross_entropy(logits, y, reduction="sum")
            cm += confusion_matrix(logits.argmax(1), y, k)
            if cm_corrected is not None:
                cm_corrected += confusion_matrix((logits + bias).argmax(1), y, k)
        self.dist.all_reduce_sum(loss_sum)
        self.dist.all_reduce_sum(cm)
        out = summarize(cm, self.class_names)
        out["loss"] = loss_sum.item() / max(1, int(cm.sum().item()))
        if cm_corrected is not None:
            self.dist.all_reduce_sum(cm_corrected)
            out["prior_corrected"] = summarize(cm_corrected, self.class_names)
        return out

    def validate(self, epoch: int) -> dict:
        start = time.perf_counter()
        bias = self.prior_bias()
        raw = self.evaluate(self.model, self.data.val, bias)
        rec = {"phase": "val", **raw, "class_names": self.class_names,
               "val_loss": raw["loss"], "val_accuracy": raw["accuracy"], "val_macro_f1": raw["macro_f1"],
               "ema_loss": None, "ema_accuracy": None, "ema_macro_f1": None}
        if self.ema is not None:
            ema = self.evaluate(self.ema.module, self.data.val)
            rec.update(ema_loss=ema["loss"], ema_accuracy=ema["accuracy"], ema_macro_f1=ema["macro_f1"])
            rec["_ema_full"] = ema
        rec["eval_seconds"] = time.perf_counter() - start
        return rec

    # -- the run -----------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until num_epochs (which the controller may extend), early stopping, or a stop request."""
        while self.epoch < self.cfg.num_epochs and self.stop_reason is None and self.interrupt is None:
            epoch = self.epoch + 1
            start = time.perf_counter()
            scored = label_filter.refresh(self)
            scoring_s = time.perf_counter() - start
            train_rec = self.train_one_epoch(epoch)
            if scored:  # scoring the training images is part of this epoch's time (the time budget counts it)
                train_rec["label_filter_seconds"] = scoring_s
            if self.interrupt is not None:  # the partial epoch is dropped: last.pt stays the resume point
                break
            val_rec = self.validate(epoch)
            self.epoch = epoch
            improved = self._record(epoch, train_rec, val_rec)
            self.schedule.after_epoch(monitor_value(self.history[-1], self.cfg.monitor))
            self._run_hooks(epoch)
            self._fit_time_budget(epoch)
            if self.cfg.early_stopping and self.bad_epochs >= self.cfg.early_stopping_patience and self.stop_reason is None:
                self.stop_reason = (f"early stopping: {self.cfg.monitor} did not improve for "
                                    f"{self.bad_epochs} epochs (best {self.best['value']:.4g} at epoch {self.best['epoch']})")
            if self.dist.is_main:
                self.save_checkpoints(improved)
        if self.interrupt is not None and self.stop_reason is None:
            self.stop_reason = (f"stopped by {self.interrupt} during epoch {self.epoch + 1}, after the current batch; "
                                f"the partial epoch was dropped and last.pt holds epoch {self.epoch}")
        return self.summary()

    def _fit_time_budget(self, epoch: int) -> None:
        """Re-plan num_epochs to what fits in time_budget_minutes at the recent epoch times (see engine.budget)."""
        budget = self.cfg.time_budget_minutes * 60
        seconds = [r.get("epoch_seconds", 0.0) for r in self.history if r["phase"] == "val"]
        if budget <= 0 or not seconds or epoch >= self.cfg.num_epochs:
            return
        self.budget_cap = max(self.budget_cap, self.cfg.num_epochs)  # the plan before any cut, or an extension
        fits = epochs_that_fit(seconds, budget, self.cfg.num_epochs, self.budget_cap)
        fits = self.dist.broadcast(fits if self.dist.is_main else None)  # every rank stops at the same epoch
        if fits != self.cfg.num_epochs:
            planned, self.cfg.num_epochs = self.cfg.num_epochs, max(epoch, fits)
            self.rebuild_schedule(keep_progress=True)
            self.budget_notes.append(f"time_budget_minutes={self.cfg.time_budget_minutes:g}: num_epochs {planned} -> "
                                     f"{self.cfg.num_epochs} after epoch {epoch} ({recent_epoch_seconds(seconds):.0f} s "
                                     f"per epoch lately); the lr schedule now ends at epoch {self.cfg.num_epochs}")

    @property
    def status(self) -> str:
        """completed (num_epochs reached), stopped (a signal, early stopping, a stop request) or pruned."""
        if self.stop_reason is None:
            return "completed"
        return self.stop_status

    def _record(self, epoch: int, train_rec: dict, val_rec: dict) -> bool:
        now = time.time()
        common = {"epoch": epoch, "session_id": self.session_id}
        train_out = {"timestamp": now, **common, **train_rec}
        ema_full = val_rec.pop("_ema_full", None)
        val_out = {"timestamp": now, **common, **val_rec, "train_loss": train_rec["loss"],
                   "train_accuracy": train_rec["accuracy"], "lr": train_rec["lr"],
                   "epoch_seconds": train_rec["epoch_seconds"] + val_rec["eval_seconds"]
                   + train_rec.get("label_filter_seconds", 0.0)}
        self.history += [train_out, val_out]
        if self.dist.is_main:
            for sink in self.sinks:
                sink.emit(train_out)
                sink.emit(val_out)
        raw_value = monitor_value(val_out, self.cfg.monitor)
        ema_value = -math.inf
        if ema_full is not None:
            ema_value = monitor_value({f"val_{k}": v for k, v in ema_full.items()}, self.cfg.monitor)
        value, source = (ema_value, "ema") if ema_value > raw_value else (raw_value, "raw")
        chosen_loss = ema_full["loss"] if source == "ema" else val_out["loss"]
        chosen_loss = chosen_loss if math.isfinite(chosen_loss) else math.inf
        # On a small val set accuracy ties often; the tie goes to the lower val loss (the more confident model).
        improved = value > self.best["value"] or (value == self.best["value"] and chosen_loss < self.best.get("tie_loss", math.inf))
        if improved:
            self.best = {**self.best, "value": value, "epoch": epoch, "source": source, "tie_loss": chosen_loss}
        # Patience counts epochs in which neither the monitored metric nor val_loss improved: on a small
        # val set accuracy saturates and ties for many epochs while the model is still getting better.
        loss = val_out["loss"] if math.isfinite(val_out["loss"]) else math.inf
        loss_improved = loss < self.best.get("val_loss", math.inf)
        if loss_improved:
            self.best["val_loss"] = loss
        self.bad_epochs = 0 if (improved or loss_improved) else self.bad_epochs + 1
        return improved

    def _run_hooks(self, epoch: int) -> None:
        self._commands = []
        if self.dist.is_main:
            for hook in self.hooks:
                hook.on_epoch_end(self, epoch)
        commands = self.dist.broadcast(self._commands)
        if not self.dist.is_main:
            for name, arg in commands:
                getattr(self, name)(*arg, _replay=True)

    def _log_command(self, name: str, *args) -> None:
        if self.dist.enabled and self.dist.is_main:
            self._commands.append((name, args))

    # -- the controller's interface ------------------------------------------------------------------
    def reset_weights(self, _replay: bool = False) -> Msg:
        """Back to the initial weights, with a fresh optimizer state and EMA, and a new lr schedule (warmup
        included) over the epochs that remain: a fresh start at the schedule's peak would take full-size
        Adam steps on the restored weights at once. Returns a note of the new schedule."""
        if self.initial_weights is None:
            raise RuntimeError("the initial weights were not kept (intelligent_training is off)")
        self._log_command("reset_weights")
        self.model.load_state_dict(self.initial_weights)
        self.fresh_ema()
        self.optimizer = build_optimizer(self.model, self.cfg)
        self.rebuild_schedule(keep_progress=False)
        return Msg("note.schedule_again", {"n": self.cfg.num_epochs - self.epoch, "w": self.schedule.warmup})

    def fresh_ema(self) -> None:
        """A new EMA of the current weights (after they were replaced wholesale)."""
        if self.ema is not None:
            self.ema = SparseEma(self.model, decay=self.cfg.model_ema_decay, use_warmup=True)

    def request_stop(self, reason: str, pruned: bool = False, _replay: bool = False) -> None:
        """Stop after this epoch; ``pruned``: a study's pruner judged the run not worth finishing."""
        self._log_command("request_stop", reason, pruned)
        self.stop_reason = reason
        self.stop_status = "pruned" if pruned else "stopped"

    def summary(self) -> dict:
        val = [r for r in self.history if r["phase"] == "val"]
        last = last_val_record(self.history) or {}
        return {"session_id": self.session_id, "epochs": self.epoch, "best_epoch": self.best["epoch"],
                "best_source": self.best["source"], "monitor": self.cfg.monitor,
                "best_value": abs(self.best["value"]) if self.cfg.monitor == "val_loss" else self.best["value"],
                "last_val_accuracy": last.get("accuracy"), "last_val_macro_f1": last.get("macro_f1"),
                "stop_reason": self.stop_reason or "completed num_epochs", "status": self.status,
                "interrupted_by": self.interrupt,
                "train_seconds": round(sum(r.get("epoch_seconds", 0.0) for r in val), 3),
                "hooks_seconds": round(sum(getattr(h, "overhead_s", 0.0) for h in self.hooks), 3),
                "skipped_files": len(self.data.skipped), "time_budget": self.budget_notes,
                **({"label_filter": self.filter_notes} if self.filter_notes else {})}

