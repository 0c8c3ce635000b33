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
        results[split] = result
        write_evaluation(run_root / "reports", result)
    return results


def final_metrics(results: dict[str, dict]) -> dict:
    """The headline numbers of :func:`evaluate_best` for summary.json."""
    return {split: {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "num_images": r["num_images"],
                    "epoch": r.get("epoch"), "source": r.get("source")} for split, r in results.items()}
