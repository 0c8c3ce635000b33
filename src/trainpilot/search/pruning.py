"""The engine hook that reports each epoch to an Optuna trial and stops the run when the pruner says so.

It runs after the tuning controller in the same epoch, and the two do not fight:

* the epoch right after a controller change (a change applied, weights rolled back) is neither
  reported nor a pruning point: the metric there measures the change's first epoch, not the trial;
* once pruned, the run stops at this epoch (status "pruned"): the controller gets no further epoch
  in which to "rescue" it.
"""

from __future__ import annotations

import math

from trainpilot.engine.metrics import monitor_value


class PruningHook:
    def __init__(self, trial, prune: bool = True):
        self.trial, self.prune = trial, prune
        self.skipped: list[int] = []
        self.pruned_at: int | None = None

    @staticmethod
    def _controller(trainer):
        from trainpilot.tuning.controller import TuningController

        return next((h for h in trainer.hooks if isinstance(h, TuningController)), None)

    def on_epoch_end(self, trainer, epoch: int) -> None:
        if trainer.stop_reason is not None:
            return
        ctl = self._controller(trainer)
        if ctl is not None and epoch > 1 and ctl.last_change_epoch == epoch - 1:
            self.skipped.append(epoch)
            return
        val = [r for r in trainer.history if r["phase"] == "val"]
        monitor = trainer.cfg.monitor
        value = monitor_value(val[-1], monitor)  # "higher is better" (val_loss negated), as the study maximises
        if not math.isfinite(value):
            value = -1e9 if monitor == "val_loss" else 0.0
        self.trial.report(value, epoch)
        if self.prune and self.trial.should_prune():
            self.pruned_at = epoch
            trainer.request_stop(f"pruned by the study's pruner after epoch {epoch}: {monitor} "
                                 f"{abs(value):.4g} is below the other trials' at this epoch", pruned=True)

    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "pruned_at": self.pruned_at}

    def load_state_dict(self, state: dict) -> None:
        self.skipped, self.pruned_at = list(state.get("skipped", [])), state.get("pruned_at")
