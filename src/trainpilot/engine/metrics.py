"""Classification metrics from a confusion matrix (rows: true class, columns: predicted)."""

from __future__ import annotations

import math

import torch


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer confusion matrix, computed on the tensors' device without a host sync."""
    idx = targets.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def summarize(cm: torch.Tensor, class_names: list[str]) -> dict:
    """accuracy, macro precision/recall/F1 and a per-class table from a confusion matrix."""
    cm = cm.double().cpu()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    present = support > 0  # macro averages over the classes that occur in this split
    total = cm.sum().item()
    return {
        "accuracy": round(tp.sum().item() / total, 6) if total else 0.0,
        "macro_f1": round(f1[present].mean().item(), 6) if present.any() else 0.0,
        "precision": round(precision[present].mean().item(), 6) if present.any() else 0.0,
        "recall": round(recall[present].mean().item(), 6) if present.any() else 0.0,
        "per_class": {
            name: {"precision": round(precision[i].item(), 6), "recall": round(recall[i].item(), 6),
                   "f1": round(f1[i].item(), 6), "support": int(support[i].item())}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.long().tolist(),
    }


def argmax_metric(scores: torch.Tensor, labels: torch.Tensor, metric: str) -> float:
    """One entry of :func:`summarize` (``accuracy``, ``macro_f1``, ...) for the argmax of ``N x C`` scores."""
    k = scores.shape[1]
    return float(summarize(confusion_matrix(scores.argmax(1), labels, k), [str(i) for i in range(k)])[metric])


def monitor_value(record: dict, monitor: str) -> float:
    """The monitored metric as "higher is better"."""
    value = record.get(monitor)
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return -math.inf
    return -value if monitor == "val_loss" else value


def corrected_value(record: dict, monitor: str) -> float | None:
    """``monitor`` (accuracy or macro-F1) with the training class prior taken out, where ``record`` has it."""
    c = record.get("prior_corrected")
    value = c.get(monitor.removeprefix("val_")) if isinstance(c, dict) and monitor != "val_loss" else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def judged_value(record: dict, monitor: str) -> float:
    """An epoch's ``monitor`` as the tuning controller judges a change on it ("higher is better"): for accuracy
    and macro-F1, the better of the raw value and the value with the training class prior taken out at tau 1,
    where the epoch recorded that. The end-of-run fit (:mod:`trainpilot.priors`) chooses tau with 0 and 1 among
    its choices, so this is what the run answers at the least: a class-balance change competes with the
    correction the run gets anyway. The raw value alone would hold the prior against the run; tau 1 alone
    over-corrects a model that a sampler has partly rebalanced already."""
    value, raw = corrected_value(record, monitor), monitor_value(record, monitor)
    return raw if value is None else max(raw, value)
