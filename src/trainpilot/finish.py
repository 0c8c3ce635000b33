"""What a finished run writes: its best weights evaluated on val (and test), and the summary page.

The confusion matrices and per-class tables of a finished run come from ``best.pt`` (the weights
the run keeps), not from the last epoch's raw weights.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from trainpilot.jsonio import sanitize_for_json


def write_evaluation(reports_dir: Path, result: dict) -> dict[str, Path]:
    """``evaluation_<split>.json`` (counts and normalised confusion matrix, per-class table),
    ``per_class_<split>.csv`` and ``confusion_matrix_<split>.png``; returns the paths."""
    split, classes = result["split"], result["class_names"]
    reports_dir.mkdir(parents=True, exist_ok=True)
    out = {"json": reports_dir / f"evaluation_{split}.json", "csv": reports_dir / f"per_class_{split}.csv"}
    out["json"].write_text(json.dumps(sanitize_for_json(result), ensure_ascii=False, indent=2), encoding="utf-8")
    with open(out["csv"], "w", encoding="utf-8-sig", newline="") as f:  # BOM: Excel shows CJK class names
        w = csv.writer(f)
        w.writerow(["class", "precision", "recall", "f1", "support"])
        for name, row in result["per_class"].items():
            w.writerow([name, row["precision"], row["recall"], row["f1"], row["support"]])
    try:
        from trainpilot.reports.plots import plot_confusion_matrix

        title = f"{split} ({Path(result['checkpoint']).name})"
        out["png"] = plot_confusion_matrix(result["confusion_matrix"], classes,
                                           reports_dir / f"confusion_matrix_{split}.png", title=title)
    except ImportError:  # matplotlib missing: the JSON and CSV still hold everything
        pass
    return out


def adjust_best(run_root: Path, data_index, device, batch_size: int) -> dict:
    """Fit what best.pt's scores get at the end of a run and store it in best.pt: test-time augmentation
    (:mod:`trainpilot.tta`, ``tta``), then the class-prior correction of :mod:`trainpilot.priors` on the scores
    it leaves (``logit_bias``, ``logit_adjustment``), both chosen on the val split. Returns their records by
    config key (``test_time_augmentation``, ``logit_adjustment``); empty without best.pt."""
    import torch

    from trainpilot.config import build_config
    from trainpilot.engine.checkpoint import atomic_save, load_checkpoint
    from trainpilot.inference import _probabilities, load_trained
    from trainpilot.priors import choose, metric_for

    best = run_root / "checkpoints" / "best.pt"
    if not best.exists():
        return {}
    ckpt = load_checkpoint(best)
    fitted = {k: ckpt.pop(k) for k in ("logit_bias", "logit_adjustment", "tta") if k in ckpt}
    if fitted:  # a resumed run fits them again, on the raw scores
        atomic_save(ckpt, best)
    cfg = build_config(ckpt["config"])
    if data_index.val is None or not len(data_index.val):
        if cfg.test_time_augmentation != "flips":
            return {}
        ckpt["tta"] = {"used": True, "reason": "test_time_augmentation=flips (no validation split to score them on)"}
        atomic_save(ckpt, best)
        return {"test_time_augmentation": ckpt["tta"]}
    classes = [str(c) for c in ckpt["class_names"]]
    remap = [classes.index(c) for c in data_index.classes]
    trained = load_trained(run_root, "best", device=device)
    val = list(data_index.val.paths)
    good, probs, _ = _probabilities(trained, val, batch_size)
    labels = torch.tensor([remap[int(data_index.val.labels[i])] for i in good], dtype=torch.long)
    log_probs = probs.double().clamp(min=1e-12).log()
    out: dict = {}
    if cfg.test_time_augmentation != "off":
        from trainpilot import tta

        trained.model = tta.FlipAveraged(trained.model)
        flipped = _probabilities(trained, val, batch_size)[1].double().clamp(min=1e-12).log()
        choice = tta.choose(log_probs, flipped, labels, metric_for(cfg.monitor),
                            forced=cfg.test_time_augmentation == "flips")
        ckpt["tta"] = out["test_time_augmentation"] = choice.to_dict()
        if choice.used:
            log_probs = flipped
    if cfg.logit_adjustment != "off":
        from trainpilot.engine.live import loss_shares

        train = dict(zip(data_index.classes, data_index.counts("train")))
        counts = [train.get(c, 0) for c in classes]
        shares = loss_shares(cfg, counts, classes)
        adjustment = choose(log_probs, labels, shares, metric_for(cfg.monitor))
        ckpt["logit_adjustment"] = out["logit_adjustment"] = adjustment.to_dict()
        if adjustment.tau > 0:
            ckpt["logit_bias"] = torch.tensor(adjustment.bias, dtype=torch.float32)
    atomic_save(ckpt, best)
    return out


def evaluate_best(run_root: Path, data_index, device, batch_size: int) -> dict[str, dict]:
    """best.pt on the run's val split and, when the dataset has one, its test split."""
    from trainpilot.inference import evaluate_files, load_trained

    best = run_root / "checkpoints" / "best.pt"
    if not best.exists():
        return {}
    trained = load_trained(run_root, "best", device=device)
    remap = [trained.class_names.index(c) for c in data_index.classes]
    results = {}
    for split in ("val", "test"):
        part = getattr(data_index, split)
        if part is None or not len(part):
            continue
        result = evaluate_files(trained, list(part.paths), [remap[i] for i in part.labels], split,
                                Path(data_index.root), batch_size)
        result["epoch"], result["source"] = trained.meta.get("epoch"), trained.meta.get("source")
        result["logit_adjustment"] = trained.meta.get("logit_adjustment")
        result["test_time_augmentation"] = bool((trained.meta.get("tta") or {}).get("used"))
        results[split] = result
        write_evaluation(run_root / "reports", result)
    return results


def final_metrics(results: dict[str, dict]) -> dict:
    """The headline numbers of :func:`evaluate_best` for summary.json."""
    return {split: {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "num_images": r["num_images"],
                    "epoch": r.get("epoch"), "source": r.get("source"),
                    "logit_tau": (r.get("logit_adjustment") or {}).get("tau", 0.0),
                    "flips": r.get("test_time_augmentation", False)} for split, r in results.items()}
