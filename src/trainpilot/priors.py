"""Logit adjustment: take out of a trained model's scores the class shares it was trained under.

A classifier trained on imbalanced data learns the training class shares as a prior, and its argmax
favours the classes it saw most: on a defect-free majority it calls borderline defects "ok".
Subtracting ``tau * log(share)`` from the logits (Menon et al., "Long-tail learning via logit
adjustment", ICLR 2021) removes that prior; ``tau = 1`` removes it exactly for a calibrated model.

The share is what reached the loss: the run's sampled counts (:func:`~trainpilot.data.weights.sampled_counts`)
times its class weights. A balanced sampler, balanced loss weights or balanced data give equal shares,
and then nothing changes. ``tau`` is chosen on the validation split for the run's monitored metric
(macro-F1 when it monitors the loss) from :data:`TAUS`; each tau is scored by the mean of its own
value and its neighbours', so that one lucky validation image does not decide, and a tau that does
not beat the raw model on validation is not used.

The result is a per-class bias stored in ``best.pt`` (``logit_bias``) and added by
:class:`AdjustedLogits`, so evaluation, prediction, the dashboard and the ONNX export all see it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainpilot.data.weights import sampled_counts
from trainpilot.engine.metrics import argmax_metric

TAUS = tuple(i * 0.25 for i in range(9))  # 0 .. 2
EQUAL = 1.02  # largest/smallest share below which the classes count as equally seen


class AdjustedLogits(nn.Module):
    """``model(x) + bias``: a trained model with its class-prior correction."""

    def __init__(self, model: nn.Module, bias: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("bias", bias.detach().float().reshape(1, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.bias.to(dtype=torch.float32)


@dataclass(frozen=True)
class Adjustment:
    tau: float
    bias: list[float]          # per class, in the model's class order; zeros when tau is 0
    metric: str                # macro_f1 or accuracy, on the validation split
    before: float              # the raw model's value
    after: float               # the value at tau
    shares: list[float]        # the class shares the loss saw
    scores: dict[str, float]   # tau -> validation value
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def training_shares(counts: list[int], sampler: str, class_weights: dict[str, float] | None,
                    classes: list[str]) -> torch.Tensor:
    """How much of the loss each class made: sampled counts times class weights, summing to 1."""
    drawn = torch.tensor(sampled_counts(list(counts), sampler), dtype=torch.float64)
    if class_weights:
        drawn = drawn * torch.tensor([float(class_weights.get(c, 1.0)) for c in classes], dtype=torch.float64)
    drawn = drawn.clamp(min=1e-12)
    return drawn / drawn.sum()


def prior_bias(shares: torch.Tensor, tau: float = 1.0) -> torch.Tensor | None:
    """``-tau * log(share)``, centred: the per-class bias that takes the prior out of the scores; None when
    every class reached the loss (about) equally often."""
    if float(shares.max() / shares.min()) < EQUAL:
        return None
    log_share = shares.double().log()
    return -(tau * log_share - (tau * log_share).mean())


def _score(log_probs: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor, metric: str, k: int) -> float:
    return argmax_metric(log_probs + bias, labels, metric)


def choose(log_probs: torch.Tensor, labels: torch.Tensor, shares: torch.Tensor, metric: str) -> Adjustment:
    """The tau in :data:`TAUS` that serves ``metric`` best on these validation scores (log-softmax)."""
    k = log_probs.shape[1]
    shown = [round(float(s), 6) for s in shares]
    zero = torch.zeros(k, dtype=torch.float64)
    before = _score(log_probs.double(), labels, zero, metric, k)
    if prior_bias(shares) is None:
        return Adjustment(0.0, [0.0] * k, metric, before, before, shown, {},
                          "every class reached the loss equally often: there is no prior to take out")
    biases = [prior_bias(shares, t) for t in TAUS]
    raw = [_score(log_probs.double(), labels, b, metric, k) for b in biases]
    smooth = [sum(raw[max(0, i - 1):i + 2]) / len(raw[max(0, i - 1):i + 2]) for i in range(len(raw))]
    best = max(range(len(TAUS)), key=lambda i: (round(smooth[i], 9), -i))
    scores = {f"{t:g}": round(v, 6) for t, v in zip(TAUS, raw)}
    if best == 0 or raw[best] <= raw[0]:
        return Adjustment(0.0, [0.0] * k, metric, before, before, shown, scores,
                          f"no tau beat the raw model's validation {metric} ({before:.4f})")
    return Adjustment(TAUS[best], [round(float(b), 6) for b in biases[best]], metric, before, raw[best], shown,
                      scores, f"validation {metric} {before:.4f} -> {raw[best]:.4f} at tau {TAUS[best]:g}")


def metric_for(monitor: str) -> str:
    """The validation metric tau is chosen for: the monitored one (macro-F1 for the loss)."""
    return "accuracy" if monitor == "val_accuracy" else "macro_f1"
