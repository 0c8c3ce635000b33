"""Test-time augmentation: a trained model's class probabilities averaged over an image and its flips.

Training draws horizontal and vertical flips (surface defects have no canonical orientation), so the
model has learned each view; averaging its probabilities over the four (the image, flipped left-right,
upside down, and both) removes part of the noise of one view, which matters most for the small classes
whose few training images the model has not generalised from. It costs four forward passes an image.

``test_time_augmentation=auto`` decides at the end of training, on the validation split: the flips are
used when they score the monitored metric at least as well as the single view and lower the validation
log-loss. The choice is stored in ``best.pt``, so evaluation, prediction, the dashboard and the ONNX
export all apply it (:class:`FlipAveraged`); the class-prior correction of :mod:`trainpilot.priors` is
then fitted on the averaged scores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainpilot.engine.metrics import argmax_metric

VIEWS = 4


class FlipAveraged(nn.Module):
    """``log(mean softmax)`` of ``model`` over the image and its three flips, in one batched forward pass:
    log-probabilities, which are valid logits (their softmax is the mean probability)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        views = torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-2).flip(-1)])
        log_probs = torch.log_softmax(self.model(views).float(), dim=1)
        return torch.logsumexp(log_probs.reshape(VIEWS, n, -1), dim=0) - math.log(VIEWS)


@dataclass(frozen=True)
class TTAChoice:
    used: bool
    metric: str                  # macro_f1 or accuracy, on the validation split
    single: float                # the single view's value
    flips: float                 # the four views' value
    single_loss: float           # validation log-loss (mean negative log-likelihood)
    flips_loss: float
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _evaluate(log_probs: torch.Tensor, labels: torch.Tensor, metric: str) -> tuple[float, float]:
    return argmax_metric(log_probs, labels, metric), float(nn.functional.nll_loss(log_probs.double(), labels))


def choose(single: torch.Tensor, flips: torch.Tensor, labels: torch.Tensor, metric: str,
           forced: bool = False) -> TTAChoice:
    """Use the flips (log-probabilities ``flips``) over the single view (``single``) on these validation
    labels? ``forced`` (test_time_augmentation=flips) uses them whatever validation says."""
    (v1, l1), (v4, l4) = _evaluate(single, labels, metric), _evaluate(flips, labels, metric)
    used = forced or (v4 >= v1 and l4 < l1)
    said = f"validation {metric} {v1:.4f} -> {v4:.4f}, log-loss {l1:.4f} -> {l4:.4f} with the flips"
    if forced:
        reason = f"test_time_augmentation=flips ({said})"
    elif used:
        reason = said
    else:
        reason = f"{said}: not better on validation, so one view"
    return TTAChoice(used, metric, round(v1, 6), round(v4, 6), round(l1, 6), round(l4, 6), reason)
