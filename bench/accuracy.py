"""Test accuracy of trainpilot's defaults on neu-cls, within a 10-minute CPU budget per run.

    .venv/bin/python bench/accuracy.py [--seeds 0 1] [--data ../shared/datasets/neu-cls]

Runs, one after another: mobilenetv3_small_100 from scratch (one run per seed) and
tf_efficientnet_lite0 from the packaged ImageNet weights. Only model_name / use_pretrained /
seed differ from the defaults (and num_epochs=10 for the pretrained model, which converges fast). Prints the test top-1 and macro-F1 of each run's best checkpoint.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import trainpilot
from trainpilot.inference import evaluate_split, load_trained

ROOT = Path(__file__).resolve().parents[1]


def one(data: Path, runs: Path, **overrides) -> dict:
    start = time.perf_counter()
    run = trainpilot.train({"data_dir": str(data), "use_tensorboard": False, **overrides}, runs_dir=runs, quiet=True)
    minutes = (time.perf_counter() - start) / 60
    test = evaluate_split(load_trained(run.dir), data, split="test")
    return {**overrides, "epochs": run.summary["epochs"], "minutes": round(minutes, 2),
            "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            "best_source": run.summary["best_source"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "neu-cls")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--skip-pretrained", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as runs:
        for seed in args.seeds:
            results.append(one(args.data, Path(runs), model_name="mobilenetv3_small_100", seed=seed))
            print(json.dumps(results[-1]), flush=True)
        if not args.skip_pretrained:
            results.append(one(args.data, Path(runs), model_name="tf_efficientnet_lite0", use_pretrained=True, seed=0,
                               num_epochs=10))
            print(json.dumps(results[-1]), flush=True)
    print("\n| model | weights | seed | epochs | minutes | test top-1 | test macro-F1 |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model_name']} | {'ImageNet (packaged)' if r.get('use_pretrained') else 'from scratch'} | "
              f"{r['seed']} | {r['epochs']} | {r['minutes']} | {r['test_accuracy']:.2%} | {r['test_macro_f1']:.4f} |")


if __name__ == "__main__":
    main()
