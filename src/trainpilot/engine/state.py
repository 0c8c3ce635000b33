"""The trainer's state in one place: :meth:`TrainerState.state_dict` / :meth:`load_state_dict`.

The same dict is last.pt (a resume), a pre-adjustment snapshot (a rollback) and, trimmed to the
weights, best.pt. It holds tensors and plain data only (loadable with ``weights_only=True``). The
learning rate has one source of truth, the config's ``learning_rate``: the schedule saves its shape
and progress, and takes its peak from the config when it is loaded.
"""

from __future__ import annotations

import copy
import shutil
from typing import TYPE_CHECKING

from trainpilot.config import build_config
from trainpilot.engine.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state  # noqa: F401
from trainpilot.engine.optim import LRSchedule, build_optimizer

if TYPE_CHECKING:
    from trainpilot.engine.trainer import Trainer

FORMAT = 1


class TrainerState:
    """Mixed into :class:`~trainpilot.engine.trainer.Trainer`: what it saves, restores and snapshots."""

    def _meta(self: "Trainer") -> dict:
        return {"format": FORMAT, "session_id": self.session_id, "config": self.cfg.to_dict(),
                "class_names": self.class_names, "model_info": self.model_info, "model_note": self.cfg.model_note,
                "image_size": self.cfg.image_size}

    def state_dict(self: "Trainer") -> dict:
        """Everything a resumed run needs to continue as if it had never stopped."""
        return {**self._meta(), "epoch": self.epoch, "global_step": self.global_step,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.precision.scaler.state_dict() if self.precision.scaler else None,
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "best": dict(self.best), "bad_epochs": self.bad_epochs, "stop_reason": self.stop_reason,
                "hooks": {type(h).__name__: h.state_dict() for h in self.hooks}, "rng": rng_state(),
                "label_filter": self.label_filter.state_dict(), "budget_cap": self.budget_cap}

    def load_state_dict(self: "Trainer", state: dict, rollback: bool = False) -> None:
        """Load a :meth:`state_dict` (a last.pt, or a snapshot). ``rollback``: only the weights, EMA,
        optimizer, schedule, scaler and config come back; the epoch counter, best, patience, hooks and
        random state go on (the run continues from the restored weights)."""
        self.cfg = build_config(state["config"])
        self.model.load_state_dict(state["model"])
        if state.get("model_info") and state["model_info"] != self.model_info:
            self.set_model_info(state["model_info"])  # a rollback across a switch onto pretrained weights
        self.optimizer = build_optimizer(self.model, self.cfg)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule = LRSchedule(self.cfg, self.steps_per_epoch(), self.cfg.num_epochs)
        self.schedule.load_state_dict(state["schedule"])
        if self.precision.scaler is not None and state.get("scaler"):
            self.precision.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.sync_modules()
        if rollback:
            return
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
        self.label_filter.load_state_dict(state.get("label_filter"))
        self.budget_cap = int(state.get("budget_cap") or 0)
        for hook in self.hooks:
            hook_state = state.get("hooks", {}).get(type(hook).__name__)
            if hook_state is not None:
                hook.load_state_dict(hook_state)
        set_rng_state(state["rng"])

    def snapshot(self: "Trainer", _replay: bool = False) -> dict:
        """An in-memory copy of everything a rollback must restore (weights bit-for-bit)."""
        self._log_command("snapshot")
        self._last_snapshot = copy.deepcopy(self.state_dict())
        return self._last_snapshot

    def restore(self: "Trainer", snap: dict | None = None, _replay: bool = False) -> None:
        """Roll back to a snapshot (the config, optimizer and schedule too); the epoch counter keeps going."""
        self._log_command("restore")
        self.load_state_dict(snap or self._last_snapshot, rollback=True)

    def save_checkpoints(self: "Trainer", improved: bool) -> None:
        """last.pt every epoch (the whole state); best.pt when the monitored metric improved (its weights)."""
        atomic_save(self.state_dict(), self.run.last)
        if improved:
            source = self.best["source"]
            weights = self.ema.module.state_dict() if (source == "ema" and self.ema is not None) else self.model.state_dict()
            atomic_save({**self._meta(), "epoch": self.epoch, "model": weights, "source": source,
                         "monitor": self.cfg.monitor, "value": self.best["value"]}, self.run.best)


def copy_to_user_dirs(tr: "Trainer", model_dir, stem: str) -> list[str]:
    """Copy best/last checkpoints into model_save_dir as <model_filename>_best.pt / _last.pt."""
    written = []
    if model_dir is None:
        return written
    model_dir.mkdir(parents=True, exist_ok=True)
    for src, suffix in ((tr.run.best, "best"), (tr.run.last, "last")):
        if src.exists():
            dst = model_dir / f"{stem}_{suffix}.pt"
            shutil.copyfile(src, dst)
            written.append(str(dst))
    return written


__all__ = ["TrainerState", "load_checkpoint", "copy_to_user_dirs", "FORMAT"]
