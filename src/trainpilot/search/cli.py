"""`trainpilot tune`: a multi-trial search (Optuna) with the tuning controller inside every trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from trainpilot.config import ConfigError

console = Console(stderr=True, soft_wrap=True)


class TrialTable:
    """One aligned row per trial as it finishes (the header once)."""

    def __init__(self, keys: list[str]):
        self.keys, self.header = keys[:5], True

    def row(self, t) -> None:
        table = Table(show_header=self.header, box=None, pad_edge=False)
        for col, width in (("trial", 5), ("state", 8), ("value", 7), ("test F1", 7), ("epochs", 6), ("changes", 7)):
            table.add_column(col, width=width)
        for k in self.keys:
            table.add_column(k.split(".")[-1][:14], width=14)
        test = (t.user_attrs.get("test") or {}).get("macro_f1")
        fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
        table.add_row(str(t.number), t.state.name.lower(), fmt(t.value) if t.value is not None else "-",
                      fmt(test) if test is not None else "-", str(t.user_attrs.get("epochs", "-")),
                      str(len(t.user_attrs.get("adjustments") or [])), *[fmt(t.params.get(k, "-")) for k in self.keys])
        console.print(table)
        self.header = False


def _fixed_keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in data.items():
        out |= _fixed_keys(v, f"{prefix}{k}.") if isinstance(v, dict) and k == "intelligent_training" else {prefix + k}
    return out


def _new_spec(data, config, set_, runs_dir, trials, study, storage, space, sampler, pruner, controller, seed,
              hybrid_share, memory, no_memory):
    from trainpilot.config import apply_overrides, load_config, read_config_file
    from trainpilot.data.prepare import scan
    from trainpilot.data.profile import profile_dataset
    from trainpilot.search.memory import USER_MEMORY, meta_features
    from trainpilot.search.space import default_space, load_space, space_to_dict
    from trainpilot.search.storage import shown
    from trainpilot.search.study import PRUNERS, SAMPLERS, StudySpec

    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler '{sampler}' is not one of: {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise ConfigError(f"--pruner '{pruner}' is not one of: {', '.join(PRUNERS)}")
    data_arg = str(data.resolve()) if data is not None and data.exists() else (str(data) if data is not None else None)
    overrides = ([f"data_dir={json.dumps(data_arg)}"] if data_arg else []) + list(set_ or [])
    cfg = load_config(config, overrides)  # the fixed part is validated before anything runs
    fixed = _fixed_keys(apply_overrides(read_config_file(config) if config else {}, overrides))
    with console.status("reading the dataset"):
        profile = profile_dataset(scan(cfg))
    space_params = load_space(space, fixed) if space else default_space(profile, fixed)
    name = study or f"tune_{Path(cfg.data_dir).name or 'data'}_{time.strftime('%Y%m%d_%H%M%S')}"
    if not name.replace("-", "_").replace(".", "_").isidentifier() and not name.replace("-", "").isalnum():
        raise ConfigError(f"--study {name!r} cannot be a folder name; use letters, digits, '-' and '_'")
    study_dir = Path(runs_dir) / name
    if (study_dir / "study.json").exists():  # the same command on another worker joins the study
        return StudySpec.load(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    secret = bool(storage) and shown(storage) != storage
    return StudySpec(name=name, dir=str(study_dir), data_dir=str(Path(cfg.data_dir).resolve()), storage=storage,
                     storage_secret=secret, config=str(Path(config).resolve()) if config else None, overrides=overrides,
                     space=space_to_dict(space_params), sampler=sampler, pruner=pruner, controller=controller,
                     n_trials=trials, seed=seed, hybrid_share=hybrid_share,
                     memory=None if no_memory else str(memory or USER_MEMORY), meta=meta_features(profile))


def tune(
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (overrides data_dir)."),
    config: Optional[Path] = typer.Option(None, "--config", help="A config file; its keys are fixed for every trial."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Fix a key for every trial: --set key=value."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="The study folder is <runs-dir>/<study>/."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="Trials in the study (default 20)."),
    epoch_budget: int = typer.Option(0, "--epoch-budget", min=0, help="Stop starting trials once all trials together "
                                     "trained this many epochs (0: --trials alone decides)."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name; the same name joins the same study."),
    storage: Optional[str] = typer.Option(None, "--storage", help="SQLAlchemy URL, or a .log/.journal file "
                                          "(default: <study>/study.journal)."),
    space: Optional[Path] = typer.Option(None, "--space", help="YAML search space (key: {low, high, log} or {choices})."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, gp, cmaes, random or hybrid."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none."),
    controller: bool = typer.Option(True, "--controller/--no-controller", help="The tuning controller in every trial."),
    n_jobs: int = typer.Option(1, "--n-jobs", min=1, help="Trials in parallel on this machine (worker processes)."),
    seed: int = typer.Option(0, "--seed", help="The sampler's seed."),
    hybrid_share: float = typer.Option(0.3, "--hybrid-share", min=0.0, max=1.0, help="hybrid: most trials the advisor proposes."),
    memory: Optional[Path] = typer.Option(None, "--memory", help="The user-level experience memory file."),
    no_memory: bool = typer.Option(False, "--no-memory", help="Neither warm-start from nor write to the user-level memory."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the study in this folder."),
    worker: int = typer.Option(0, "--worker", hidden=True),
    threads: int = typer.Option(0, "--threads", hidden=True),
) -> None:
    """Search hyperparameters over many trials (Optuna); every trial is a normal run in the study's folder."""
    from trainpilot.search.study import StudySpec

    if resume is not None:
        spec = StudySpec.load(resume)
        if storage:
            spec.storage = storage
        elif spec.storage_secret:
            raise ConfigError("this study's storage URL holds a password, which is never written to a file; "
                              "give it again with --storage")
        if trials:
            spec.n_trials = trials
    else:
        spec = _new_spec(data, config, set_, runs_dir, trials or (10**6 if epoch_budget else 20), study, storage,
                         space, sampler, pruner, controller, seed, hybrid_share, memory, no_memory)
        spec.epoch_budget = epoch_budget
    if threads:
        import torch

        torch.set_num_threads(threads)
    if worker:
        _work(spec, worker)
        return
    spec.save()
    _run(spec, n_jobs)


def _work(spec, worker: int, table: TrialTable | None = None) -> None:
    from trainpilot.search.study import work

    log = lambda m: console.print(f"[dim]{m}[/]", highlight=False)  # noqa: E731
    work(spec, worker, log=log, on_finish=table.row if table else None)


def _run(spec, n_jobs: int) -> None:
    from trainpilot.search.outputs import best_trial, write_outputs
    from trainpilot.search.storage import open_storage
    from trainpilot.search.study import open_study, warm_start

    _, where = open_storage(spec.storage, spec.path)
    size = f"{spec.epoch_budget} epochs" if spec.epoch_budget else f"{spec.n_trials} trials"
    console.print(f"study [bold]{spec.name}[/] in {spec.path} (storage {where}): {size}, sampler "
                  f"{spec.sampler}, pruner {spec.pruner}, controller {'on' if spec.controller else 'off'}; searching "
                  f"{', '.join(spec.space)}", highlight=False)
    if note := spec.small_study_note():
        console.print(f"[yellow]note: {note}[/]", highlight=False)
    study = open_study(spec)
    warm_start(spec, study, lambda m: console.print(f"[dim]{m}[/]", highlight=False))
    table = TrialTable(list(spec.space))
    try:
        if n_jobs == 1:
            _work(spec, 0, table)
        else:
            _children(spec, n_jobs, study, table)
    finally:
        outputs = write_outputs(spec, study)
        best = best_trial(study)
        if best is not None:
            test = (best.user_attrs.get("test") or {}).get("macro_f1")
            console.print(f"best: trial {best.number}, {best.user_attrs.get('monitor')} {best.value:.4f} (val)"
                          + (f", test macro-F1 {test:.4f}" if test is not None else ""), highlight=False)
            console.print(f"train it again: trainpilot train --config {outputs['best_config']} --data {spec.data_dir}",
                          highlight=False)
        console.print(f"report: {outputs['report']}", highlight=False)


def _children(spec, n_jobs: int, study, table: TrialTable) -> None:
    """``n_jobs`` worker processes on this study, torch threads split between them; rows as trials finish."""
    from optuna.trial import TrialState

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "trainpilot", "tune", "--resume", spec.dir, "--threads", str(threads)]
    if spec.storage:
        cmd += ["--storage", spec.storage]
    procs = [subprocess.Popen([*cmd, "--worker", str(i + 1)], env=env) for i in range(n_jobs)]
    shown: set[int] = set()
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    while True:
        running = any(p.poll() is None for p in procs)
        for t in study.get_trials(deepcopy=False, states=done):
            if t.number not in shown:
                shown.add(t.number)
                table.row(t)
        if not running:
            break
        time.sleep(1.0)
    bad = [p.returncode for p in procs if p.returncode not in (0, None)]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n_jobs} workers ended with an error (exit {bad[0]}); see above")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
