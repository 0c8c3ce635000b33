"""The training loss: cross-entropy or focal, with optional class weights and label smoothing, for hard
or mixup-soft targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationLoss(nn.Module):
    """Mean cross-entropy, or focal loss when ``focal_gamma`` > 0.

    Hard cross-entropy targets use ``F.cross_entropy`` (weights and smoothing built in). Every other case
    works on a target distribution: soft targets from ``timm.data.Mixup`` (which already carry the
    smoothing), or hard targets smoothed into one. Each class's term is ``-t log p``, scaled by
    ``(1 - p) ** focal_gamma`` for focal loss (Lin et al., 2017: the images the model already gets right
    count less, the hard ones more), and weighted per class so that class weights keep working.
    """

    def __init__(self, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 focal_gamma: float = 0.0):
        super().__init__()
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.label_smoothing = label_smoothing
        self.focal_gamma = focal_gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if target.ndim == 1:
            if not self.focal_gamma:
                return F.cross_entropy(logits, target, weight=self.class_weights, label_smoothing=self.label_smoothing)
            n = logits.shape[1]
            target = F.one_hot(target, n).float() * (1 - self.label_smoothing) + self.label_smoothing / n
        log_p = F.log_softmax(logits, dim=-1)
        terms = -target * log_p
        if self.focal_gamma:
            terms = terms * (1 - log_p.exp()).pow(self.focal_gamma)
        if self.class_weights is None:
            return terms.sum(-1).mean()
        w = self.class_weights.to(log_p.dtype)
        return (terms * w).sum() / (target * w).sum()
