"""Reading studies for people: which folders under a runs directory are studies, and what each holds.

The dashboard's study pages and ``trainpilot tune``'s output read a study through here; the trials
themselves are runs, read through :mod:`trainpilot.runs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainpilot.config import ConfigError


def is_study(path: Path) -> bool:
    return (path / "study.json").is_file()


def list_studies(runs_dir: str | Path) -> list[Path]:
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")) and is_study(d)),
                  key=lambda d: d.name)


def trial_row(t) -> dict[str, Any]:
    test = t.user_attrs.get("test") or {}
    return {"number": t.number, "state": t.state.name.lower(), "value": t.value,
            "params": t.user_attrs.get("params_used") or t.params, "test_macro_f1": test.get("macro_f1"),
            "test_accuracy": test.get("accuracy"), "epochs": t.user_attrs.get("epochs"),
            "diagnosis": t.user_attrs.get("diagnosis"),
            "changes": [a.get("text") for a in t.user_attrs.get("adjustments") or []],
            "run": Path(t.user_attrs.get("run_dir", "")).name or None,
            "proposed_by": t.user_attrs.get("proposed_by") or t.user_attrs.get("warm_start_from") and "memory",
            "stop_reason": t.user_attrs.get("stop_reason")}


def read_study(path: str | Path) -> dict[str, Any]:
    """The study's settings and its trials as plain data (``error`` says why trials cannot be read)."""
    import optuna

    from trainpilot.search.storage import open_storage
    from trainpilot.search.study import StudySpec

    path = Path(path)
    spec = StudySpec.load(path)
    out: dict[str, Any] = {"name": spec.name, "sampler": spec.sampler, "pruner": spec.pruner,
                           "controller": spec.controller, "n_trials": spec.n_trials, "epoch_budget": spec.epoch_budget,
                           "data_dir": spec.data_dir, "space": spec.space, "trials": [], "best": None, "error": None,
                           "report": (path / "study.html").is_file()}
    if spec.storage_secret:
        out["error"] = "the study is in a database whose password is not stored; see it with trainpilot tune --resume"
        return out
    try:
        storage, _ = open_storage(spec.storage, path)
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except (ConfigError, KeyError) as err:
        out["error"] = str(err).splitlines()[0]
        return out
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    out["trials"] = rows
    out["best"] = max(done, key=lambda r: r["value"]) if done else None
    out["counts"] = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "running", "fail", "waiting")}
    return out
