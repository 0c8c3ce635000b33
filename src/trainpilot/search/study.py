"""A study: its settings (``study.json``), the Optuna study behind it, and the worker loop.

Every worker (this process, ``--n-jobs`` child processes, or the same command on other machines)
runs :func:`work`: it marks trials of dead workers as failed, stops once the study holds
``n_trials`` trials that finished or are running (so the count is right with any number of
workers) or once its trials trained ``epoch_budget`` epochs, lets the hybrid advisor enqueue its share, asks Optuna for a trial and trains it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from trainpilot.config import ConfigError
from trainpilot.engine.rundir import write_json_atomic
from trainpilot.search.memory import USER_MEMORY, Memory, warm_start_params
from trainpilot.search.space import contains, space_from_dict
from trainpilot.search.storage import open_storage
from trainpilot.search.trial import TrialSetup, run_trial

SAMPLERS = ("tpe", "gp", "cmaes", "random", "hybrid")
PRUNERS = ("median", "hyperband", "none")
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
MAX_FAILURES_IN_A_ROW = 3
FEW_TRIALS = 3  # a study expected to run fewer trials than this gets a warning (StudySpec.small_study_note)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class StudySpec:
    """What a study is, as written to ``<study>/study.json`` (no password: see ``storage_secret``)."""

    name: str
    dir: str
    data_dir: str
    storage: str | None = None
    storage_secret: bool = False  # the URL held a password: --resume needs --storage again
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    space: dict = field(default_factory=dict)
    sampler: str = "tpe"
    pruner: str = "median"
    controller: bool = True
    n_trials: int = 20
    epoch_budget: int = 0  # >0: stop starting trials once the study's trials trained this many epochs in all
    seed: int = 0
    hybrid_share: float = 0.3
    memory: str | None = str(USER_MEMORY)  # the user-level memory file; None: this study's file only
    meta: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def trial_epochs(self) -> int:
        """The epochs of one trial: the fixed num_epochs, or the lowest a searched num_epochs may take."""
        from trainpilot.config import load_config

        searched = self.space.get("num_epochs")
        if searched:
            return int(searched["low"] if "low" in searched else min(searched["choices"]))
        return load_config(self.config, self.overrides).num_epochs  # the recipe's own choice when not fixed

    @property
    def expected_trials(self) -> int:
        """``n_trials``, or with an epoch budget, about how many trials of the fixed length fit in it."""
        if not self.epoch_budget:
            return self.n_trials
        return min(self.n_trials, max(1, self.epoch_budget // max(1, self.trial_epochs)))

    def small_study_note(self) -> str | None:
        """A warning where the study holds fewer than ``FEW_TRIALS`` trials: then it is little more than
        the best of a few random draws from the space (bench/search.py measures it)."""
        n = self.expected_trials
        if n >= FEW_TRIALS:
            return None
        held = f"an epoch budget of {self.epoch_budget} holds" if self.epoch_budget else "--trials asks for"
        epochs = self.trial_epochs
        return (f"{held} {n} trial{'s' if n != 1 else ''} of {epochs} epochs, too few for the sampler to learn "
                f"from (its first trials are random draws): one `trainpilot train` run of the defaults for "
                f"{n * epochs} epochs is usually the better use of them")

    def save(self) -> None:
        data = asdict(self)
        if self.storage_secret:
            data["storage"] = None
        write_json_atomic(self.path / "study.json", data)

    @classmethod
    def load(cls, study_dir: str | Path) -> "StudySpec":
        path = Path(study_dir) / "study.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{**{k: v for k, v in data.items() if k in cls.__dataclass_fields__}, "dir": str(study_dir)})
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"cannot resume '{study_dir}': {path} is missing or unreadable "
                              f"({getattr(err, 'strerror', None) or err}); give a study folder made by trainpilot tune") from None


def make_sampler(name: str, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """``n_trials``: the trials the study is expected to run; a third of them (2 to 10) start it at random."""
    startup = max(2, min(10, n_trials // 3))
    if name in ("tpe", "hybrid"):
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"--sampler '{name}' is not one of: {', '.join(SAMPLERS)}")


def make_pruner(name: str, trial_epochs: int = 0) -> optuna.pruners.BasePruner:
    """No trial is judged before half its ``trial_epochs`` (at least epoch 2): under a warmup and a
    decaying lr, the early curves of trials with different lrs cross, so an early rank is mostly noise."""
    first = max(2, trial_epochs // 2)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=first)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner '{name}' is not one of: {', '.join(PRUNERS)}")


def open_study(spec: StudySpec, worker: int = 0) -> optuna.Study:
    storage, _ = open_storage(spec.storage, spec.path)
    return optuna.create_study(study_name=spec.name, storage=storage, direction="maximize", load_if_exists=True,
                               sampler=make_sampler(spec.sampler, spec.seed + worker, spec.expected_trials),
                               pruner=make_pruner(spec.pruner, spec.trial_epochs))


def memories(spec: StudySpec) -> list[Memory]:
    mems = [Memory(spec.path / "memory.json")]
    return mems + [Memory(Path(spec.memory))] if spec.memory else mems


def warm_start(spec: StudySpec, study: optuna.Study, log: Callable[[str], None], limit: int = 3) -> int:
    """Enqueue the best configs of the nearest earlier datasets as the first trials of a new study."""
    if study.get_trials(deepcopy=False) or not spec.memory:
        return 0
    space = space_from_dict(spec.space)
    n = 0
    for source, params in warm_start_params([Memory(Path(spec.memory))], spec.meta, spec.data_dir):
        inside = contains(space, params)  # a config partly outside this space is not that config: skipped
        if inside and len(inside) == sum(k in space for k in params) and n < limit:
            study.enqueue_trial(inside, user_attrs={"warm_start_from": source}, skip_if_exists=True)
            n += 1
    if n:
        log(f"memory: {n} trial(s) warm-started from the nearest earlier dataset(s) in {spec.memory}")
    return n


def fail_stale(study: optuna.Study, log: Callable[[str], None]) -> int:
    """Mark RUNNING trials whose worker is gone as FAIL (a worker on this host with a dead pid, or a
    run another host left without a heartbeat); returns how many."""
    from trainpilot.runs import Run, RunStoreError, pid_alive

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        dead = worker.get("host") == socket.gethostname() and worker.get("pid") != os.getpid() \
            and not pid_alive(int(worker.get("pid") or 0))
        if not dead and worker.get("host") != socket.gethostname() and t.user_attrs.get("run_dir"):
            try:
                dead = Run.open(t.user_attrs["run_dir"]).status.state == "crashed"
            except RunStoreError:
                dead = False
        if dead:
            study.tell(t.number, state=TrialState.FAIL)
            log(f"trial {t.number}: its worker (pid {worker.get('pid')} on {worker.get('host')}) is gone; "
                f"marked failed, the study goes on")
            n += 1
    return n


def epochs_spent(study: optuna.Study) -> int:
    return sum(int(t.user_attrs.get("epochs") or 0) for t in study.get_trials(deepcopy=False))


def _budget_spent(spec: StudySpec, study: optuna.Study) -> bool:
    return spec.epoch_budget > 0 and epochs_spent(study) >= spec.epoch_budget


def _outcomes(attrs: dict) -> list[dict]:
    return [{"diagnosis": a["diagnosis"], "key": k["key"], "direction": k["direction"], "status": a["status"]}
            for a in attrs.get("adjustments") or [] for k in a.get("keys") or []]


def work(spec: StudySpec, worker: int = 0, log: Callable[[str], None] = print,
         on_finish: Callable[[optuna.trial.FrozenTrial], None] | None = None) -> optuna.Study:
    """Run trials until the study holds ``spec.n_trials`` finished or running ones."""
    study = open_study(spec, worker)
    setup = TrialSetup(spec.path, spec.config, spec.overrides, space_from_dict(spec.space), spec.controller,
                       spec.pruner != "none")
    advisor = _advisor(spec) if spec.sampler == "hybrid" else None
    failures = 0
    while True:
        fail_stale(study, log)
        if len(study.get_trials(deepcopy=False, states=COUNTED)) >= spec.n_trials or _budget_spent(spec, study):
            return study
        if advisor is not None:
            from trainpilot.search.hybrid import propose

            propose(study, setup.space, advisor, log, spec.hybrid_share)
        trial = study.ask()
        try:
            state, value, attrs = run_trial(setup, study, trial)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as err:  # noqa: BLE001 - one bad trial (a config that cannot train) does not end the study
            study.tell(trial, state=TrialState.FAIL)
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            log(f"trial {trial.number} failed: {message}")
            failures += 1
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise RuntimeError(f"{failures} trials in a row failed; the last: {message}") from err
            continue
        failures = 0
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        for mem in memories(spec):
            mem.record(spec.data_dir, spec.meta, trial.params if state == TrialState.COMPLETE else None, value,
                       _outcomes(attrs))
        if on_finish is not None:
            on_finish(study.get_trials(deepcopy=False)[trial.number])
        if state == TrialState.FAIL:  # the run was stopped by a signal: so is the worker
            raise KeyboardInterrupt


def _advisor(spec: StudySpec):
    from trainpilot.config import load_config
    from trainpilot.tuning.advisors import RuleAdvisor, create_advisor

    cfg = load_config(spec.config, spec.overrides)
    if cfg.intelligent_training.advisor == "rules":
        return RuleAdvisor()
    return create_advisor(cfg.intelligent_training.model_copy(update={"advisor": "llm"}), spec.path / "llm_cache")
