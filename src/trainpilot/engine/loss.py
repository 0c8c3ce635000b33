"""Cross-entropy with optional class weights and label smoothing, for hard or mixup-soft targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationLoss(nn.Module):
    """Mean cross-entropy.

    Hard targets use ``F.cross_entropy`` (weights and smoothing built in). Soft targets from
    ``timm.data.Mixup`` already carry the smoothing, and are weighted per class so that class
    weights keep working under mixup/cutmix.
    """

    def __init__(self, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if target.ndim == 1:
            return F.cross_entropy(logits, target, weight=self.class_weights, label_smoothing=self.label_smoothing)
        log_p = F.log_softmax(logits, dim=-1)
        if self.class_weights is None:
            return -(target * log_p).sum(-1).mean()
        w = self.class_weights.to(log_p.dtype)
        per_sample = -(target * w * log_p).sum(-1)
        return per_sample.sum() / (target * w).sum()
