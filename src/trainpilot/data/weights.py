"""Class weights for the loss, computed from the class counts the loss sees, and the sampler's draw weights.

A sampler changes how often each class reaches the loss: with ``sqrt`` sampling a 21:1 training set
arrives as about 4.6:1. Loss weights are computed on those sampled counts (:func:`sampled_counts`),
so that sampling and weighting together balance the classes once, not twice.
"""

from __future__ import annotations

import math

STRATEGIES = ("balanced", "inverse", "log_inverse", "custom", "none")


def compute_class_weights(counts: list[float], classes: list[str], strategy: str,
                          custom: dict[str, float] | None = None) -> dict[str, float]:
    """Weights per class name, from the per-class image counts the loss sees.

    balanced:    n / (k * count)  (scikit-learn's definition; mean weight over samples is 1)
    inverse:     1 / count, rescaled so the weights average 1 over classes
    log_inverse: 1 + log(max_count / count), rescaled to average 1; gentler for extreme imbalance
    custom:      the given ``custom`` mapping, which must name every class
    none:        1.0 for every class
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"weight_strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "custom":
        custom = custom or {}
        missing = [c for c in classes if c not in custom]
        if missing:
            raise ValueError(f"weight_strategy 'custom' needs class_weights for every class; missing {missing}")
        return {c: float(custom[c]) for c in classes}
    if strategy == "none":
        return {c: 1.0 for c in classes}
    n, k = sum(counts), len(counts)
    safe = [max(1.0, c) for c in counts]
    if strategy == "balanced":
        raw = [n / (k * c) for c in safe]
    elif strategy == "inverse":
        inv = [1.0 / c for c in safe]
        raw = [w * k / sum(inv) for w in inv]
    else:
        logs = [1.0 + math.log(max(safe) / c) for c in safe]
        raw = [w * k / sum(logs) for w in logs]
    return {c: round(w, 6) for c, w in zip(classes, raw)}


SAMPLER_POWER = {"shuffle": 1.0, "sqrt": 0.5, "balanced": 0.0}  # a class is drawn in proportion to count ** power


def sampled_counts(counts: list[int], sampler: str) -> list[float]:
    """Images of each class the loss sees per epoch under ``sampler`` (same epoch length as ``counts``)."""
    power = SAMPLER_POWER[sampler]
    drawn = [c ** power if c > 0 else 0.0 for c in counts]
    total, scale = sum(counts), sum(drawn)
    return [round(d * total / scale, 3) if scale else 0.0 for d in drawn]


def sampling_weights(labels, num_classes: int, sampler: str):
    """Per-image draw weights for ``sampler`` (``sqrt`` or ``balanced``), as a float64 tensor.

    With power p, class c is drawn with probability proportional to count_c ** p: p = 1 would be the
    plain shuffle, p = 0 draws every class equally often, p = 0.5 is the usual compromise.
    """
    import torch

    counts = torch.bincount(labels, minlength=num_classes).double().clamp(min=1)
    return (counts ** (SAMPLER_POWER[sampler] - 1.0))[labels]
