"""Search strategies at an equal budget of training epochs (not a test).

On reduced copies of X-SDD and neu-cls (a few dozen images per class at 64 px, so that every study
fits a session on a CPU), over several seeds, compares:

1. defaults: one run of the defaults with the controller, for the whole budget;
2. tpe: Optuna's TPE, no controller, no pruning;
3. random: random search, no controller, no pruning;
4. tune: ``trainpilot tune`` (TPE + median pruning + the controller in every trial);
5. hybrid: as 4, with the rule advisor proposing up to 30% of the trials;
6. tune/3: as 4 with a third of the budget;
7. tune/3+memory: as 6, with an experience memory filled beforehand by one full-budget ``tune`` study on
   another subsample of the same dataset (other images, the same classes), as a team that tuned on one
   production line's images would have when it tunes the next.

Every study selects its best trial on validation macro-F1; the table reports that trial's test
macro-F1 (mean, spread) and wins/ties/losses against tpe (a tie is within 0.005).

    python bench/search.py [--seeds 3] [--first-seed 0] [--budget 24] [--trial-epochs 4] [--only xsdd] [--methods tpe,tune]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "weight_decay": {"low": 1e-5, "high": 0.3, "log": True},
         "label_smoothing": {"low": 0.0, "high": 0.2}, "advanced_augmentation_enabled": {"choices": [False, True]},
         "dropout_rate": {"low": 0.0, "high": 0.5}, "batch_size": {"choices": [16, 32]}}
FIXED = {"image_size": 64, "model_name": "tf_efficientnet_lite0", "use_pretrained": True, "mixed_precision": False,
         "use_tensorboard": False, "early_stopping": False}


def reduced(src: Path, dst: Path, per_class: dict[str, int], seed: int = 0, size: int = 64) -> Path:
    """A copy of ``src`` with at most ``per_class[split]`` images per class, resized to ``size`` px."""
    rng = random.Random(seed)
    for split, n in per_class.items():
        for cls in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            files = sorted(cls.iterdir())
            rng.shuffle(files)
            out = dst / split / cls.name
            out.mkdir(parents=True, exist_ok=True)
            for f in files[:n]:
                Image.open(f).convert("RGB").resize((size, size)).save(out / (f.stem + ".png"))
    return dst


def study(data: Path, root: Path, name: str, seed: int, budget: int, trial_epochs: int, sampler: str,
          pruner: str, controller: bool, memory: Path | None = None, trace: list | None = None,
          notes: list | None = None) -> float:
    from trainpilot.search.outputs import best_trial
    from trainpilot.search.space import space_from_dict, space_to_dict
    from trainpilot.search.study import StudySpec, work

    overrides = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in
                 {**FIXED, "num_epochs": trial_epochs, "seed": seed, "data_dir": data}.items()]
    spec = StudySpec(name=name, dir=str(root / name), data_dir=str(data), overrides=overrides,
                     space=space_to_dict(space_from_dict(SPACE)), sampler=sampler, pruner=pruner,
                     controller=controller, n_trials=10**6, epoch_budget=budget, seed=seed,
                     memory=str(memory) if memory else None)
    from trainpilot.data.prepare import scan
    from trainpilot.data.profile import profile_dataset
    from trainpilot.config import load_config
    from trainpilot.search.memory import meta_features
    from trainpilot.search.study import open_study, warm_start

    spec.meta = meta_features(profile_dataset(scan(load_config(None, overrides))))
    spec.path.mkdir(parents=True)
    warm_start(spec, open_study(spec), print)
    result = work(spec, log=lambda m: None)
    if trace is not None:  # (epochs spent so far, best val so far) after each trial
        spent, best_val = 0, -1.0
        for t in result.get_trials():
            spent += int(t.user_attrs.get("epochs") or 0)
            best_val = max(best_val, t.value if t.value is not None else -1.0)
            trace.append((spent, best_val))
    best = best_trial(result)
    if notes is not None:  # what the study did: trials, pruned, proposed by the advisor or carried from a controller
        trials = result.get_trials()
        by = [t.user_attrs.get("proposed_by") for t in trials]
        notes.append(f"{len(trials)} trials, {sum(t.state.name == 'PRUNED' for t in trials)} pruned"
                     + "".join(f", {by.count(n)} from {n}" for n in sorted({b for b in by if b})))
    return float((best.user_attrs.get("test") or {}).get("macro_f1") or 0.0)


def memory_check(tmp: Path, args) -> None:
    """A study on one X-SDD subsample fills a memory; on a second, similar subsample, a study with that
    memory is compared with one without it (epochs to reach the no-memory best) and with the defaults."""
    per = {"train": 30, "val": 12, "test": 30}
    first = reduced(SHARED / "xsdd", tmp / "mem_a", per, seed=10)
    second = reduced(SHARED / "xsdd", tmp / "mem_b", per, seed=11)
    mem = tmp / "memory.json"
    study(first, tmp / "mem_runs_a", "a", 0, args.budget, args.trial_epochs, "tpe", "median", True, memory=mem)
    with_mem, without = [], []
    f1_mem = study(second, tmp / "mem_runs_b1", "b", 1, args.budget, args.trial_epochs, "tpe", "median", True,
                   memory=mem, trace=with_mem)
    f1_none = study(second, tmp / "mem_runs_b0", "b", 1, args.budget, args.trial_epochs, "tpe", "median", True,
                    trace=without)
    f1_default = defaults(second, tmp / "mem_runs_d", 1, args.budget)
    target = without[-1][1]
    reached = next((spent for spent, v in with_mem if v >= target - 1e-9), None)
    print(f"\nmemory: test macro-F1 with memory {f1_mem:.4f}, without {f1_none:.4f}, defaults {f1_default:.4f}")
    print(f"memory: the no-memory best val {target:.4f} after {without[-1][0]} epochs; with memory reached after "
          f"{reached if reached is not None else 'never (within the budget)'} epochs"
          + (f" ({reached / without[-1][0]:.0%})" if reached else ""))


def defaults(data: Path, root: Path, seed: int, budget: int) -> float:
    import trainpilot

    run = trainpilot.train({**FIXED, "num_epochs": budget, "seed": seed, "data_dir": str(data)}, runs_dir=root,
                           quiet=True)
    return float(run.summary["final"]["test"]["macro_f1"])


def compare(tmp: Path, args: argparse.Namespace) -> None:
    sets = {"xsdd": {"train": 20, "val": 12, "test": 30}, "neu-cls": {"train": 20, "val": 12, "test": 30}}
    methods = [("defaults", None), ("tpe", ("tpe", "none", False, 1)), ("random", ("random", "none", False, 1)),
               ("tune", ("tpe", "median", True, 1)), ("hybrid", ("hybrid", "median", True, 1)),
               ("tune/3", ("tpe", "median", True, 3)), ("tune/3+memory", ("tpe", "median", True, 3))]
    if args.methods:
        methods = [m for m in methods if m[0] in args.methods.split(",")]
    for ds, per_class in sets.items():
        if args.only and ds != args.only:
            continue
        data = reduced(SHARED / ds, tmp / ds, per_class)
        mem = None
        if any(m == "tune/3+memory" for m, _ in methods):
            mem = tmp / f"memory_{ds}.json"
            other = reduced(SHARED / ds, tmp / f"{ds}_other", per_class, seed=10)
            study(other, tmp / f"mem_runs_{ds}", "m", 100, args.budget, args.trial_epochs, "tpe", "median", True,
                  memory=mem)
        scores: dict[str, list[float]] = {m: [] for m, _ in methods}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method, how in methods:
                start, notes = time.perf_counter(), []
                root = tmp / "runs" / ds / f"{method.replace('/', '_')}_{seed}"
                root.mkdir(parents=True)
                if how is None:
                    score = defaults(data, root, seed, args.budget)
                else:
                    sampler, pruner, controller, div = how
                    score = study(data, root, "s", seed, args.budget // div, args.trial_epochs, sampler, pruner,
                                  controller, notes=notes, memory=mem if method.endswith("+memory") else None)
                scores[method].append(score)
                print(f"{ds} seed {seed} {method:13s} test macro-F1 {score:.4f} ({time.perf_counter() - start:.0f} s"
                      + "".join(f"; {n}" for n in notes) + ")", flush=True)
        print(f"\n{ds}: {args.seeds} seeds, {args.budget} training epochs per method (tune/3: a third)")
        print(f"{'method':14s} {'mean':>7s} {'sd':>6s}  vs tpe (w/t/l)")
        tpe = scores.get("tpe") or []
        for method, vals in scores.items():
            w = sum(a > b + 0.005 for a, b in zip(vals, tpe))
            lo = sum(a < b - 0.005 for a, b in zip(vals, tpe))
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            print(f"{method:14s} {statistics.mean(vals):7.4f} {sd:6.4f}  {w}/{len(vals) - w - lo}/{lo}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    ap.add_argument("--budget", type=int, default=24, help="training epochs per method and seed")
    ap.add_argument("--trial-epochs", type=int, default=4)
    ap.add_argument("--only", default="", help="one dataset: xsdd or neu-cls")
    ap.add_argument("--methods", default="", help="comma-separated subset, e.g. tpe,tune (default: all)")
    ap.add_argument("--memory-check", action="store_true", help="only the experience-memory comparison")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:  # a study's trials hold gigabytes of checkpoints
        if args.memory_check:
            memory_check(Path(tmp), args)
        else:
            compare(Path(tmp), args)


if __name__ == "__main__":
    main()
