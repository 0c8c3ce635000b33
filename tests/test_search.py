"""`trainpilot tune`: search spaces, storages, pruning next to the controller, workers, faults, PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import TINY
from trainpilot.config import ConfigError, IntelligentTrainingConfig, load_config
from trainpilot.data.profile import DataProfile
from trainpilot.runs import Run
from trainpilot.search.space import Param, check_param, contains, default_space, load_space, suggest
from trainpilot.search.storage import open_storage

CMD = [sys.executable, "-m", "trainpilot"]
FIXED = {k: v for k, v in TINY.items() if k != "intelligent_training"}
SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "dropout_rate": {"low": 0.0, "high": 0.5}}


def sets(cfg: dict) -> list[str]:
    return [a for k, v in cfg.items() for a in ("--set", f"{k}={json.dumps(v, ensure_ascii=False)}")]


def tune(args: list[str], tmp_path: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, "tune", "--no-memory", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600, **kw)


@pytest.fixture
def space_file(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


# -- the search space ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("learnin_rate: {low: 0.001, high: 0.1}", "unknown config key; did you mean 'learning_rate'?"),
    ("learning_rate: {low: 0.001, high: 20}", "less than or equal to 10"),
    ("learning_rate: {low: 0.1, high: 0.01}", "must be below high"),
    ("learning_rate: {low: 0, high: 0.01, log: true}", "a log scale needs low > 0"),
    ("optimizer: [AdamW, Adagrad]", "optimizer"),
    ("optimizer: {low: 1, high: 2}", "not a number; give choices (one of: Adam, AdamW"),
    ("batch_size: {low: 8.5, high: 64}", "whole-number"),
    ("model_name: [resnet18, no_such_net]", "no_such_net"),
    ("num_epochs: {low: 2, high: 9}", "fixed by --set"),
    ("dropout_rate: {lo: 0.1, high: 0.2}", "lo"),
])
def test_a_bad_space_file_is_one_line_naming_the_key(tmp_path, text, expected):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_space(path, fixed={"num_epochs"})
    assert expected in str(err.value) and "\n" not in str(err.value) and "space file" in str(err.value)


def test_the_default_space_reads_the_data_and_leaves_fixed_keys_out():
    square = DataProfile(images=60, val_images=12, classes=["a", "b"], counts=[30, 30], imbalance_ratio=1.0,
                         majority_share=0.5, median_width=64, median_height=64, min_side=64, max_side=64,
                         median_long_side=64, median_aspect=1.0, elongated_share=0.0, grayscale=False)
    space = default_space(square, fixed={"batch_size", "model_name"})
    assert {"learning_rate", "weight_decay", "label_smoothing", "advanced_augmentation_enabled", "dropout_rate",
            "image_size"} == set(space)
    assert space["learning_rate"].log and space["weight_decay"].log
    assert space["image_size"].choices == [64, 96]  # near the images' own 64 px, not 224
    big = default_space(replace(square, median_width=400, median_height=380, median_long_side=400, max_side=400),
                        fixed=set())
    assert max(big["image_size"].choices) == 224 and "model_name" in big
    # 2:1 parts, letterboxed into a 2:1 input: the long side, up to as many pixels as a 224 px square
    wide = default_space(replace(square, median_width=400, median_height=200, median_long_side=400, max_side=400,
                                 median_aspect=2.0, median_width_ratio=2.0, elongated_share=1.0), fixed=set())
    assert wide["image_size"].choices == [320]


def test_suggested_values_are_typed_rounded_and_inside_the_space():
    space = {"learning_rate": Param(low=1e-4, high=1e-2, log=True), "batch_size": Param(low=8, high=32),
             "use_class_weights": check_param("use_class_weights", Param(choices=[False, True]))}
    study = optuna.create_study(direction="maximize")
    for _ in range(5):
        params = suggest(study.ask(), space)
        assert isinstance(params["batch_size"], int) and 8 <= params["batch_size"] <= 32
        assert params["learning_rate"] == float(f"{params['learning_rate']:.4g}")
        assert contains(space, params) == params
    assert contains(space, {"learning_rate": 0.5, "dropout_rate": 0.1}) == {}


# -- storages ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("storage,expected", [
    ("not a url", "neither a database URL"),
    ("postgresql://u:secret@127.0.0.1:1/db", "cannot use the database"),
    ("postgresql://u:secret@[::1/db", "not a valid database URL"),
    ("/no/such/folder/study.journal", "does not exist"),
])
def test_a_bad_storage_is_one_line_without_the_password(tmp_path, storage, expected):
    with pytest.raises(ConfigError) as err:
        open_storage(storage, tmp_path)
    assert expected in str(err.value) and "secret" not in str(err.value) and "\n" not in str(err.value)


def test_tune_with_a_dead_database_is_a_one_line_error(tiny_data, tmp_path, space_file):
    result = tune(["--data", str(tiny_data), "--space", str(space_file), "--trials", "1",
                   "--storage", "postgresql://tp:hunter2@127.0.0.1:1/tp", *sets(FIXED)], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: --storage") and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


# -- a study end to end ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("trials, budget, expected", [
    (10**6, 16, "an epoch budget of 16 holds 2 trials of 8 epochs"),
    (1, 0, "--trials asks for 1 trial of 8 epochs"),
    (10**6, 24, None), (3, 0, None)])
def test_a_study_too_small_to_search_says_so_and_names_the_single_run(tmp_path, trials, budget, expected):
    from trainpilot.search.study import StudySpec

    spec = StudySpec(name="s", dir=str(tmp_path), data_dir=str(tmp_path), overrides=["num_epochs=8"],
                     n_trials=trials, epoch_budget=budget)
    note = spec.small_study_note()
    if expected is None:
        assert note is None
    else:
        single = f"trainpilot train` run of the defaults for {spec.expected_trials * 8} epochs"
        assert note.startswith(expected) and single in note


def test_a_study_runs_trials_as_normal_runs_and_writes_a_winner_that_trains_again(tiny_data, tmp_path, space_file):
    result = tune(["--data", str(tiny_data), "--space", str(space_file), "--trials", "3", "--study", "s1",
                   *sets(FIXED)], tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "runs" / "s1"
    study = optuna.load_study(study_name="s1", storage=open_storage(None, root)[0])
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    for t in trials:
        run = Run.open(t.user_attrs["run_dir"])  # every trial is a run the store, reports and dashboard read
        assert run.status.state in ("completed", "pruned")
        changed = {k["key"] for a in t.user_attrs["adjustments"] for k in a["keys"]}  # the controller's changes
        assert run.config["learning_rate"] == t.user_attrs["params_used"]["learning_rate"] or "learning_rate" in changed
        assert t.user_attrs["diagnosis"] and "test" in t.user_attrs and isinstance(t.user_attrs["adjustments"], list)
    assert "best: trial" in result.stderr and "train it again" in result.stderr
    assert "too few for the sampler" not in result.stderr  # three trials: no small-study warning
    from trainpilot.search.store import list_studies, read_study

    assert list_studies(tmp_path / "runs") == [root]
    seen = read_study(root)
    assert len(seen["trials"]) == 3 and seen["error"] is None and seen["trials"][0]["run"] == "trial_0000"
    html = (root / "study.html").read_text()
    assert "Optimization history" in html and "Parameter importances" in html and "trial_0002" in html
    assert (root / "plotly.min.js").stat().st_size > 100_000 and (root / "best.pt").is_file()
    cfg = load_config(root / "best_config.yaml")
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert cfg.learning_rate == best.user_attrs["params_used"]["learning_rate"]
    again = subprocess.run([*CMD, "train", "--quiet", "--config", str(root / "best_config.yaml"), "--data",
                            str(tiny_data), "--runs-dir", str(tmp_path / "again"), "--epochs", "1"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr


def test_two_workers_share_one_journal_study_without_duplicates(tiny_data, tmp_path, space_file):
    result = tune(["--data", str(tiny_data), "--space", str(space_file), "--trials", "4", "--study", "par",
                   "--n-jobs", "2", *sets(FIXED)], tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "runs" / "par"
    trials = optuna.load_study(study_name="par", storage=open_storage(None, root)[0]).get_trials()
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers trained


def test_a_killed_worker_leaves_a_failed_trial_and_resume_goes_on(tiny_data, tmp_path, space_file):
    fixed = {**FIXED, "num_epochs": 60, "early_stopping": False}
    proc = subprocess.Popen([*CMD, "tune", "--no-memory", "--data", str(tiny_data), "--space", str(space_file),
                             "--trials", "2", "--study", "k", *sets(fixed)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = tmp_path / "runs" / "k" / "trial_0000" / "status.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (status.exists() and (json.loads(status.read_text()).get("epoch") or 0) >= 1):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    root = tmp_path / "runs" / "k"
    spec = json.loads((root / "study.json").read_text())
    spec["overrides"] = [o for o in spec["overrides"] if not o.startswith("num_epochs")] + ["num_epochs=2"]
    (root / "study.json").write_text(json.dumps(spec))  # the resumed trials are short
    result = tune(["--resume", str(root)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trial 0: its worker" in result.stderr and "marked failed" in result.stderr
    trials = optuna.load_study(study_name="k", storage=open_storage(None, root)[0]).get_trials()
    assert trials[0].state == TrialState.FAIL and Run.open(root / "trial_0000").status.state == "crashed"
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 2


def test_a_journal_lock_taken_through_a_relative_runs_dir_resolves(tmp_path, monkeypatch):
    from optuna.storages.journal import JournalFileSymlinkLock

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "k").mkdir(parents=True)
    _, where = open_storage(None, Path("runs/k"))
    assert Path(where).is_absolute()
    lock = JournalFileSymlinkLock(where)  # the lock Optuna takes for each write
    assert lock.acquire()
    try:  # a killed writer leaves this link behind; Optuna's stale-lock check needs it to resolve
        assert Path(f"{where}.lock").exists()
    finally:
        lock.release()


@pytest.mark.timeout(120)
def test_a_dangling_journal_lock_of_a_dead_writer_is_removed(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "k").mkdir(parents=True)
    lock = tmp_path / "runs" / "k" / "study.journal.lock"
    os.symlink("runs/k/study.journal", lock)  # what a killed writer of an earlier version left (relative target)
    os.utime(lock, (time.time() - 60,) * 2, follow_symlinks=False)
    storage, _ = open_storage(None, Path("runs/k"))
    optuna.create_study(storage=storage, study_name="k")  # hung at 100% CPU before
    assert not os.path.lexists(lock)
    assert "removed the stale journal lock" in capfd.readouterr().err


# -- pruning next to the controller -----------------------------------------------------------------------

def test_a_pruned_trial_stops_at_once_and_reads_pruned(tiny_data, tmp_path):
    from trainpilot.search.space import space_from_dict
    from trainpilot.search.trial import TrialSetup, run_trial

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    setup = TrialSetup(tmp_path, None, [f"{k}={json.dumps(v)}" for k, v in {**FIXED, "num_epochs": 6,
                                                                           "data_dir": str(tiny_data)}.items()],
                       space_from_dict(SPACE), controller=True)
    trial = study.ask()
    state, value, attrs = run_trial(setup, study, trial)
    assert state == TrialState.PRUNED and value is None and attrs["epochs"] == 1  # not "rescued" by the controller
    run = Run.open(trial.user_attrs["run_dir"])
    assert run.status.state == "pruned" and "pruned by the study's pruner after epoch 1" in run.status.reason


def test_the_epoch_right_after_a_controller_change_is_not_a_pruning_point():
    from trainpilot.search.pruning import PruningHook
    from trainpilot.tuning.advisors import RuleAdvisor
    from trainpilot.tuning.controller import TuningController

    ctl = TuningController(IntelligentTrainingConfig(), advisor=RuleAdvisor())
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    trial = study.ask()
    stops = []
    trainer = SimpleNamespace(hooks=[ctl], stop_reason=None, cfg=load_config(None, []),
                              history=[{"phase": "val", "val_accuracy": 0.5}],
                              request_stop=lambda reason, pruned: stops.append((reason, pruned)))
    hook = PruningHook(trial)
    ctl.pending = {"epoch": 3}  # a change applied at the end of epoch 3
    hook.on_epoch_end(trainer, 4)
    assert stops == [] and hook.skipped == [4]
    hook.on_epoch_end(trainer, 5)
    assert stops and stops[0][1] is True and hook.pruned_at == 5


@pytest.mark.parametrize("name", ["median", "hyperband"])
def test_no_trial_is_pruned_before_half_its_epochs(name):
    from trainpilot.search.study import make_pruner

    study = optuna.create_study(direction="maximize", pruner=make_pruner(name, trial_epochs=8))
    for _ in range(3):  # good trials that ran to the end
        trial = study.ask()
        for step in range(1, 9):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    trial = study.ask()
    pruned_at = None
    for step in range(1, 9):
        trial.report(0.1, step)
        if trial.should_prune():
            pruned_at = step
            break
    if name == "median":
        assert pruned_at == 4  # a far worse trial: judged (and pruned) at half its 8 epochs, not before
    else:  # hyperband's brackets decide whether this trial has a rung at all; none comes before epoch 4
        assert pruned_at is None or pruned_at >= 4


# -- the hybrid sampler -------------------------------------------------------------------------------------

def test_hybrid_falls_back_to_the_base_sampler_when_the_llm_is_unreachable(tiny_data, tmp_path, monkeypatch):
    from trainpilot.search.hybrid import propose
    from trainpilot.search.space import space_from_dict
    from trainpilot.search.trial import TrialSetup, run_trial
    from trainpilot.tuning.advisors import create_advisor

    study = optuna.create_study(direction="maximize")
    setup = TrialSetup(tmp_path, None, [f"{k}={json.dumps(v)}" for k, v in {**FIXED, "data_dir": str(tiny_data)}.items()],
                       space_from_dict(SPACE), controller=False, prune=False)
    log: list[str] = []
    assert not propose(study, setup.space, None, log.append, 0.5)  # nothing finished yet: no advisor round
    for _ in range(2):
        trial = study.ask()
        state, value, _ = run_trial(setup, study, trial)
        study.tell(trial, value, state=state)
    it = IntelligentTrainingConfig(advisor="llm", llm={"base_url": "http://127.0.0.1:9/v1",
                                                       "model": "m", "api_key_env": "TRAINPILOT_TEST_KEY", "max_retries": 0,
                                                       "timeout": 2})
    monkeypatch.setenv("TRAINPILOT_TEST_KEY", "sk-test")
    advisor = create_advisor(it)
    assert not propose(study, setup.space, advisor, log.append, 0.5)
    assert any("could not be used" in m and "base sampler" in m for m in log), log
    assert not [t for t in study.get_trials() if t.state == TrialState.WAITING]


# -- a real PostgreSQL server -------------------------------------------------------------------------------

PG = os.environ.get("TRAINPILOT_TEST_PG")


@pytest.mark.skipif(not PG, reason="no PostgreSQL server: scripts/test.sh installs and starts one with Debian's "
                                   "postgresql package (TRAINPILOT_TEST_PG); it could not here")
def test_workers_on_postgresql_join_one_study(tiny_data, tmp_path, space_file):
    name = f"pg_{uuid.uuid4().hex[:8]}"
    args = ["--data", str(tiny_data), "--space", str(space_file), "--trials", "1", "--study", name,
            "--storage", PG, *sets(FIXED)]
    (tmp_path / "a").mkdir()
    first = tune(args, tmp_path / "a")
    assert first.returncode == 0, first.stderr
    (tmp_path / "b").mkdir()
    second = tune([*args[:5], "2", *args[6:]], tmp_path / "b")  # another machine: same command, one more trial
    assert second.returncode == 0, second.stderr
    trials = optuna.load_study(study_name=name, storage=PG).get_trials()
    assert len(trials) == 2 and len({t.number for t in trials}) == 2
    assert "trainpilot:trainpilot" not in (tmp_path / "a" / "runs" / name / "study.json").read_text()


def test_hybrid_enqueues_only_validated_changes_inside_the_space(tiny_run):
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from trainpilot.search.hybrid import propose
    from trainpilot.search.space import space_from_dict
    from trainpilot.tuning.advisors.base import Advisor
    from trainpilot.tuning.proposals import Proposal, ProposedChange

    class Fixed(Advisor):
        name = "fixed"

        def advise(self, context):
            assert context.history and any(p.get("epoch") == "trial 1" for p in context.past_interventions)
            return Proposal(analysis="try a higher lr", changes=[
                ProposedChange(key="learning_rate", value=0.005, reason="underfitting"),
                ProposedChange(key="dropout_rate", value=0.99, reason="out of the schema's bounds"),
                ProposedChange(key="__import__('os')", value=1, reason="hostile")])

    space = space_from_dict(SPACE)
    dists = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True), "dropout_rate": FloatDistribution(0.0, 0.5)}
    study = optuna.create_study(direction="maximize")
    for number, value in ((0, 0.6), (1, 0.4)):
        study.add_trial(create_trial(params={"learning_rate": 0.001, "dropout_rate": 0.1 * (number + 1)},
                                     distributions=dists, value=value,
                                     user_attrs={"run_dir": str(tiny_run.dir), "diagnosis": "underfitting"}))
    log: list[str] = []
    assert propose(study, space, Fixed(), log.append, 0.5)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["proposed_by"] == "fixed"
    assert waiting[0].system_attrs["fixed_params"] == {"learning_rate": 0.005, "dropout_rate": 0.1}
    assert not propose(study, space, Fixed(), log.append, 0.5)  # one is waiting: no second proposal on top


def test_hybrid_starts_a_trial_from_what_the_best_trials_controller_kept(tiny_run, tmp_path):
    import shutil

    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from trainpilot.search.hybrid import propose
    from trainpilot.search.space import space_from_dict
    from trainpilot.tuning.advisors.base import Advisor
    from trainpilot.tuning.proposals import Proposal

    class Healthy(Advisor):
        name = "rules"

        def advise(self, context):
            return Proposal(analysis="nothing to fix")

    run_dir = shutil.copytree(tiny_run.dir, tmp_path / "best")
    with open(run_dir / "adjustments.jsonl", "a", encoding="utf-8") as f:
        for rec in ({"adj_id": "a", "epoch": 2, "status": "kept", "changes": [{"key": "dropout_rate", "old": 0.1, "new": 0.3}]},
                    {"adj_id": "b", "epoch": 4, "status": "reverted",
                     "changes": [{"key": "learning_rate", "old": 0.001, "new": 0.004}]},
                    {"adj_id": "c", "epoch": 6, "status": "kept", "changes": [{"key": "weight_decay", "old": 0.05, "new": 0.1}]}):
            f.write(json.dumps(rec) + "\n")
    dists = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True), "dropout_rate": FloatDistribution(0.0, 0.5)}
    study = optuna.create_study(direction="maximize")
    for number, value in ((0, 0.6), (1, 0.4)):
        study.add_trial(create_trial(params={"learning_rate": 0.001, "dropout_rate": 0.1}, distributions=dists,
                                     value=value, user_attrs={"run_dir": str(run_dir if number == 0 else tiny_run.dir)}))
    log: list[str] = []
    assert propose(study, space_from_dict(SPACE), Healthy(), log.append, 0.5)
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    # the kept dropout change, from epoch 1; not the reverted lr, not weight decay (outside this space)
    assert queued.system_attrs["fixed_params"] == {"learning_rate": 0.001, "dropout_rate": 0.3}
    assert queued.user_attrs["proposed_by"] == "controller" and "kept dropout_rate=0.3" in log[-1]
    trial = study.ask()
    assert suggest(trial, space_from_dict(SPACE)) == {"learning_rate": 0.001, "dropout_rate": 0.3}
    study.tell(trial, 0.5)
    log.clear()
    assert not propose(study, space_from_dict(SPACE), Healthy(), log.append, 0.9)  # once: it was tried
    assert "already tried" in log[-1]


def test_the_memory_warm_starts_a_study_from_the_nearest_dataset(tmp_path):
    from trainpilot.search.memory import Memory
    from trainpilot.search.study import StudySpec, warm_start

    mem = Memory(tmp_path / "user" / "memory.json")
    near = {"images": 900, "classes": 6, "imbalance": 8.0, "median_side": 200, "aspect": 1.0, "grayscale": 1.0}
    far = {"images": 50_000, "classes": 100, "imbalance": 1.0, "median_side": 32, "aspect": 1.0, "grayscale": 0.0}
    mem.record("/data/pcb", near, {"learning_rate": 0.003, "dropout_rate": 0.2}, 0.91,
               [{"diagnosis": "imbalance", "key": "use_class_weights", "direction": "on", "status": "kept"}])
    mem.record("/data/pcb", near, {"learning_rate": 0.02, "dropout_rate": 0.2}, 0.95, [])  # outside the space
    mem.record("/data/cifar", far, {"learning_rate": 0.0005, "dropout_rate": 0.0}, 0.99, [])
    assert mem.priors()["imbalance|use_class_weights|on"] == {"kept": 1, "reverted": 0}
    spec = StudySpec(name="s", dir=str(tmp_path / "s"), data_dir="/data/pcb-v2", space=SPACE, memory=str(mem.path),
                     meta={**near, "images": 1100})
    study = optuna.create_study(direction="maximize")
    log: list[str] = []
    assert warm_start(spec, study, log.append) == 1 and "warm-started" in log[0]
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert queued.system_attrs["fixed_params"] == {"learning_rate": 0.003, "dropout_rate": 0.2}
    assert queued.user_attrs["warm_start_from"] == "/data/pcb"


@pytest.mark.parametrize("name", ["tpe", "gp", "cmaes", "random", "hybrid"])
def test_every_sampler_searches_the_space(name):
    from trainpilot.search.space import space_from_dict
    from trainpilot.search.study import make_pruner, make_sampler

    space = space_from_dict({**SPACE, "advanced_augmentation_enabled": {"choices": [False, True]}})
    study = optuna.create_study(direction="maximize", sampler=make_sampler(name, 0, 8), pruner=make_pruner("median"))
    for _ in range(5):
        trial = study.ask()
        params = suggest(trial, space)
        assert contains(space, params) == params
        study.tell(trial, -abs(params["learning_rate"] - 3e-3) - params["dropout_rate"])
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5
    with pytest.raises(ConfigError, match="not one of"):
        make_sampler("bayes", 0, 8)
