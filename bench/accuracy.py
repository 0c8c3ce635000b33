"""Test accuracy and macro-F1 of trainpilot's defaults on several datasets, against a plain loop.

    .venv/bin/python bench/accuracy.py [--seeds 0 1] [--datasets neu-cls xsdd xsdd-majority ok-majority]
                                       [--budget 10] [--only auto,off,plain] [--set KEY=VALUE ...]

For each dataset and seed, one after another:

* ``auto``: ``trainpilot.train`` with only ``data_dir``, ``seed`` and ``time_budget_minutes`` set: the
  automatic recipe and the tuning controller decide the rest;
* ``off``: the same with the tuning controller off (``intelligent_training.enabled=false``);
* ``plain``: the plain PyTorch loop of bench/throughput.py (torchvision ImageFolder, RandomResizedCrop,
  AdamW, cosine; mobilenetv3_small_100 from scratch at 128 px), 30 epochs or the budget, last weights.

Settings were chosen on validation data; this prints test numbers (best checkpoint for trainpilot).
The imbalanced variants are written by bench/variants.py into a temporary folder. On ok-majority, whose
test split has 5-15 images per defect class, each checkpoint is also scored on ok-majority-bigtest (six
times as many test images, none of them in ok-majority): the ``bigtest`` numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import trainpilot
from trainpilot.inference import evaluate_split, load_trained
from trainpilot.runs import Run

from variants import ok_majority, ok_majority_bigtest, xsdd_majority
from throughput import plain_loop

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


def dataset(name: str, tmp: Path) -> Path:
    if name in ("ok-majority", "xsdd-majority") and (tmp / name / "test").is_dir():
        return tmp / name  # kept from an earlier --keep run
    if name == "ok-majority":
        return ok_majority(tmp / name)
    if name == "xsdd-majority":
        return xsdd_majority(tmp / name)
    return SHARED / name


def ours(data: Path, runs: Path, seed: int, budget: float, controller: bool, overrides: list[str],
         bigtest: Path | None = None) -> dict:
    start = time.perf_counter()
    cfg = {"data_dir": str(data), "seed": seed, "time_budget_minutes": budget, "use_tensorboard": False,
           "intelligent_training": {"enabled": controller}}
    run = trainpilot.train(cfg, overrides=overrides, runs_dir=runs, quiet=True)
    model = load_trained(run.dir)
    test = evaluate_split(model, data, split="test")
    big = evaluate_split(model, bigtest, split="test") if bigtest else {}
    adjustments = [json.loads(x) for x in (run.dir / "adjustments.jsonl").read_text().splitlines()] \
        if (run.dir / "adjustments.jsonl").exists() else []
    latest = {a["adj_id"]: a for a in adjustments}
    return {"epochs": run.summary["epochs"], "best_epoch": run.summary.get("best_epoch"),
            "best_val": run.summary.get("best_value"), "stop_reason": run.summary.get("stop_reason"),
            "minutes": round((time.perf_counter() - start) / 60, 2),
            "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            **({"bigtest_accuracy": big["accuracy"], "bigtest_macro_f1": big["macro_f1"]} if big else {}),
            "auto": run.summary.get("auto"),
            "diagnoses": [f"e{a['epoch']} {(a.get('diagnosis') or {}).get('primary')}" for a in latest.values()],
            "suspect_labels": (run.summary.get("suspect_labels") or {}).get("count"),
            "flips": (run.summary.get("test_time_augmentation") or {}).get("reason"),
            "tau": (run.summary.get("logit_adjustment") or {}).get("tau"),
            "budget": run.summary.get("time_budget"),
            "changes": [f"e{a['epoch']} {','.join(c['key'] for c in a['changes'])} -> {a['status']}"
                        for a in latest.values() if a["changes"]],
            "epoch_seconds": _median_epoch_seconds(run.dir),  # against the size probe's estimate in size_reason
            "size_reason": _choice_reason(run.dir, "image_size")}


def _choice_reason(run_dir: Path, key: str) -> str | None:
    recipe = Run(run_dir).info.get("recipe") or {}
    return next((c["reason"] for c in recipe.get("choices", []) if c["key"] == key), None)


def _median_epoch_seconds(run_dir: Path) -> float | None:
    secs = [r["epoch_seconds"] for r in Run(run_dir).records if r.get("phase") == "val" and r.get("epoch_seconds")]
    return round(statistics.median(secs), 1) if secs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--datasets", nargs="+", default=["neu-cls", "xsdd", "xsdd-majority", "ok-majority"])
    parser.add_argument("--budget", type=float, default=10.0, help="minutes per trainpilot run (time_budget_minutes)")
    parser.add_argument("--only", default="auto,off,plain")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config key for the trainpilot runs (auto, off), as with trainpilot train --set")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the variants and runs here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    kinds = args.only.split(",")
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or Path(tmp)
        for name in args.datasets:
            data = dataset(name, tmp)
            bigtest = ok_majority_bigtest(tmp / "ok-majority-bigtest") if name == "ok-majority" else None
            for seed in args.seeds:
                for kind in kinds:
                    if kind == "plain":
                        t = time.perf_counter()
                        r = plain_loop(data, 30, seed=seed, test=True, max_minutes=args.budget)
                        r["minutes"] = round((time.perf_counter() - t) / 60, 2)
                    else:
                        r = ours(data, tmp / "runs", seed, args.budget, controller=kind == "auto",
                                 overrides=args.overrides, bigtest=bigtest)
                    rows.setdefault((name, kind), []).append(r)
                    print(json.dumps({"dataset": name, "kind": kind, "seed": seed, **r}, ensure_ascii=False), flush=True)
    print(f"\nseeds {args.seeds}; test split; mean over seeds (min-max)\n")
    print("| dataset | trainer | test accuracy | test macro-F1 | epochs | minutes |\n|---|---|---|---|---|---|")
    label = {"auto": "trainpilot defaults (auto)", "off": "trainpilot, controller off", "plain": "plain PyTorch loop"}
    for (name, kind), rs in rows.items():
        acc, f1 = [r["test_accuracy"] for r in rs], [r["test_macro_f1"] for r in rs]
        print(f"| {name} | {label[kind]} | {statistics.mean(acc):.2%} ({min(acc):.2%}-{max(acc):.2%}) | "
              f"{statistics.mean(f1):.4f} ({min(f1):.4f}-{max(f1):.4f}) | "
              f"{'/'.join(str(r['epochs']) for r in rs)} | {'/'.join(str(r['minutes']) for r in rs)} |")
    for (name, kind), rs in rows.items():
        big = [r["bigtest_macro_f1"] for r in rs if "bigtest_macro_f1" in r]
        if big:
            acc = [r["bigtest_accuracy"] for r in rs]
            print(f"{name} {kind}: ok-majority-bigtest accuracy {statistics.mean(acc):.2%}, macro-F1 "
                  f"{statistics.mean(big):.4f} ({', '.join(f'{x:.4f}' for x in big)})")


if __name__ == "__main__":
    main()
