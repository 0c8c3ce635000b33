"""One trial of a study: a normal trainpilot run in the study's folder, reported to Optuna as it trains.

What a trial did is written on it as user attributes, so the study alone tells the story: its run
directory, status, test metrics, the controller's final diagnosis and every change it made
(``adjustments``: "learning_rate 0.001 -> 0.0005 (underfitting) kept").
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from trainpilot.search.pruning import PruningHook
from trainpilot.search.space import Param, suggest


@dataclass
class TrialSetup:
    """What every trial of a study shares: the folder, the fixed settings, the space, the switches."""

    dir: Path
    config: str | None
    overrides: list[str]
    space: dict[str, Param]
    controller: bool = True
    prune: bool = True


def _changes_text(changes: list[dict]) -> str:
    from trainpilot.reports.fmt import fmt_human

    return ", ".join(f"{c['key']} {fmt_human(c.get('old'))} -> {fmt_human(c.get('new'))}" for c in changes)


def adjustments_of(run) -> list[dict]:
    """The run's applied changes: epoch, changes, diagnosis and outcome (kept/reverted/pending)."""
    from trainpilot.tuning.actions import change_direction

    out = []
    for rec in run.adjustments:
        changes = [c for c in rec.get("changes") or [] if isinstance(c, dict) and "key" in c]
        if not changes:
            continue
        diagnosis = (rec.get("diagnosis") or {}).get("primary", "?")
        out.append({"epoch": rec.get("epoch"), "diagnosis": diagnosis, "status": str(rec.get("status")),
                    "text": f"epoch {rec.get('epoch')}: {_changes_text(changes)} ({diagnosis}) {rec.get('status')}",
                    "keys": [{"key": c["key"], "direction": change_direction(c.get("old"), c.get("new"))}
                             for c in changes]})
    return out


def run_trial(setup: TrialSetup, study, trial) -> tuple[TrialState, float | None, dict]:
    """Train one trial; returns its final state, value (the monitored metric, higher is better) and attrs."""
    import trainpilot
    from trainpilot.runs import Run
    from trainpilot.tuning.actions import loss_changed_at
    from trainpilot.tuning.diagnosis import diagnose

    params = suggest(trial, setup.space)
    name = f"trial_{trial.number:04d}"
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    trial.set_user_attr("run_dir", str((setup.dir / name).resolve()))
    trial.set_user_attr("params_used", params)
    overrides = list(setup.overrides) + [f"{k}={json.dumps(v)}" for k, v in params.items()]
    if not setup.controller:
        overrides.append("intelligent_training.enabled=false")
    hook = PruningHook(trial, prune=setup.prune)
    result = trainpilot.train(setup.config, overrides=overrides, runs_dir=setup.dir, name=name, hooks=[hook], quiet=True)
    summary, run = result.summary, Run.open(result.dir)
    final = summary.get("final") or {}
    cfg = result.config
    attrs: dict[str, Any] = {
        "status": summary.get("status"), "epochs": summary.get("epochs"), "monitor": summary.get("monitor"),
        "best_epoch": summary.get("best_epoch"), "stop_reason": summary.get("stop_reason"),
        "test": final.get("test"), "val": final.get("val"), "pruning_skipped_epochs": hook.skipped,
        "auto": summary.get("auto") or {}, "adjustments": adjustments_of(run),
        "diagnosis": diagnose(run.records, cfg, run.train_counts,
                              loss_since=loss_changed_at(run.adjustments)).primary,
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if summary.get("interrupted_by"):
        return TrialState.FAIL, None, attrs
    if summary.get("status") == "pruned":
        return TrialState.PRUNED, None, attrs
    value = summary.get("best_value")
    if summary.get("monitor") == "val_loss" and value is not None:
        value = -value  # the study maximises
    return TrialState.COMPLETE, value, attrs
