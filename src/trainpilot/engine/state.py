"""What goes into last.pt / best.pt, and how a trainer is brought back from last.pt."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from trainpilot.config import build_config
from trainpilot.engine.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from trainpilot.engine.rundir import RunDir

if TYPE_CHECKING:
    from trainpilot.engine.trainer import Trainer

FORMAT = 1


def _common(tr: "Trainer") -> dict:
    return {"format": FORMAT, "session_id": tr.session_id, "config": tr.cfg.to_dict(),
            "class_names": tr.class_names, "model_info": tr.model_info, "model_note": tr.cfg.model_note,
            "image_size": tr.cfg.image_size}


def save_checkpoints(tr: "Trainer", improved: bool) -> None:
    """last.pt every epoch (everything needed to resume); best.pt when the monitored metric improved."""
    run: RunDir = tr.run
    last = {**_common(tr), "epoch": tr.epoch, "global_step": tr.global_step,
            "model": tr.model.state_dict(), "optimizer": tr.optimizer.state_dict(),
            "schedule": tr.schedule.state_dict(),
            "scaler": tr.precision.scaler.state_dict() if tr.precision.scaler else None,
            "ema": tr.ema.state_dict() if tr.ema is not None else None,
            "best": dict(tr.best), "bad_epochs": tr.bad_epochs, "stop_reason": tr.stop_reason,
            "hooks": {type(h).__name__: h.state_dict() for h in tr.hooks}, "rng": rng_state()}
    atomic_save(last, run.last)
    if improved:
        source = tr.best["source"]
        weights = tr.ema.module.state_dict() if (source == "ema" and tr.ema is not None) else tr.model.state_dict()
        atomic_save({**_common(tr), "epoch": tr.epoch, "model": weights, "source": source,
                     "monitor": tr.cfg.monitor, "value": tr.best["value"]}, run.best)


def restore_trainer(tr: "Trainer", ckpt: dict) -> None:
    """Load a last.pt into a freshly built trainer (same data and model architecture)."""
    from trainpilot.engine import live

    tr.cfg = build_config(ckpt["config"])
    tr.epoch, tr.global_step = ckpt["epoch"], ckpt["global_step"]
    tr.model.load_state_dict(ckpt["model"])
    tr.optimizer = live.build_optimizer(tr.model, tr.cfg)
    tr.optimizer.load_state_dict(ckpt["optimizer"])
    tr.schedule = live.LRSchedule(tr.cfg, tr.steps_per_epoch(), tr.cfg.num_epochs)
    tr.schedule.load_state_dict(ckpt["schedule"])
    if tr.precision.scaler is not None and ckpt.get("scaler"):
        tr.precision.scaler.load_state_dict(ckpt["scaler"])
    if tr.ema is not None and ckpt.get("ema") is not None:
        tr.ema.load_state_dict(ckpt["ema"])
    tr.best, tr.bad_epochs = ckpt["best"], ckpt["bad_epochs"]
    for hook in tr.hooks:
        state = ckpt.get("hooks", {}).get(type(hook).__name__)
        if state is not None:
            hook.load_state_dict(state)
    live._sync_modules(tr)
    set_rng_state(ckpt["rng"])


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


__all__ = ["save_checkpoints", "restore_trainer", "load_checkpoint", "copy_to_user_dirs"]
