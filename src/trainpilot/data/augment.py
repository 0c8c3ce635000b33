"""Batched augmentation on uint8 image tensors, on whatever device the model uses.

One ``affine_grid`` + ``grid_sample`` call does a random resized crop and horizontal/vertical
flips for the whole batch, and brightness/contrast jitter is two broadcast ops, so there is no
per-image Python work in the training step. Surface defects have no canonical orientation, so
vertical flips are safe; colour jitter is limited to brightness and contrast because inspection
images are mostly grey and hue shifts would only add noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchAugment:
    """Train-time augmentation for a ``B x 3 x S x S`` uint8 batch -> normalised float batch.

    Args:
        mean, std: per-channel normalisation of the model, in [0, 1] units.
        enabled: apply crop/flip/jitter (``use_augmentation``); normalisation always happens.
        scale: area range of the random resized crop.
        ratio: aspect-ratio range of the crop.
        jitter: brightness and contrast factors are drawn from ``[1 - jitter, 1 + jitter]``.
        generator: seeded torch.Generator on the CPU; draws are made there so runs replay exactly.
    """

    def __init__(self, mean, std, *, enabled: bool = True, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
                 jitter: float = 0.2, generator: torch.Generator | None = None):
        self.mean = torch.tensor(mean).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std).view(1, 3, 1, 1) * 255.0
        self.enabled, self.scale, self.ratio, self.jitter = enabled, scale, ratio, jitter
        self.generator = generator or torch.Generator().manual_seed(0)

    def normalize(self, images: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return ((images.to(dtype) - mean) / std).to(dtype)

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=self.generator) * (high - low) + low

    def crop_flip_theta(self, n: int) -> torch.Tensor:
        """Affine matrices mapping output coordinates to a random crop of the input, flipped."""
        area = self._uniform(n, *self.scale)
        log_r = self._uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = torch.exp(log_r)
        w = torch.sqrt(area * aspect).clamp(max=1.0)
        h = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (torch.rand(n, generator=self.generator) * 2 - 1) * (1 - w)
        cy = (torch.rand(n, generator=self.generator) * 2 - 1) * (1 - h)
        flip_x = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        flip_y = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = w * flip_x, cx
        theta[:, 1, 1], theta[:, 1, 2] = h * flip_y, cy
        return theta

    def __call__(self, images: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        if not self.enabled:
            return self.normalize(images, dtype)
        n = images.shape[0]
        x = images.float()
        theta = self.crop_flip_theta(n).to(x.device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if self.jitter > 0:
            brightness = self._uniform(n, 1 - self.jitter, 1 + self.jitter).view(n, 1, 1, 1).to(x.device)
            contrast = self._uniform(n, 1 - self.jitter, 1 + self.jitter).view(n, 1, 1, 1).to(x.device)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * contrast + mean) * brightness
            x = x.clamp_(0, 255)
        return self.normalize(x, dtype)
