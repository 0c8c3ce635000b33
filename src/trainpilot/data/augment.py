"""Batched augmentation on uint8 image tensors, on whatever device the model uses.

One sampling grid + ``grid_sample`` call does a random resized crop, horizontal/vertical flips and
an optional rotation for the whole batch, and brightness/contrast jitter is two broadcast ops, so
there is no per-image Python work in the training step. Surface defects have no canonical
orientation, so vertical flips and rotations are safe; colour jitter is limited to brightness and
contrast because inspection images are mostly grey and hue shifts would only add noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchAugment:
    """Train-time augmentation for a ``B x 3 x H x W`` uint8 batch -> normalised float batch.

    Args:
        mean, std: per-channel normalisation of the model, in [0, 1] units.
        size: output ``(height, width)`` (or one side, a square); default: the input's.
        enabled: apply crop/flip/jitter (``use_augmentation``); normalisation always happens.
        scale: area range of the random resized crop.
        ratio: aspect-ratio range of the crop.
        jitter: brightness and contrast factors are drawn from ``[1 - jitter, 1 + jitter]``.
        rotation: largest angle of a random rotation, in degrees either way (0: none).
        generator: seeded torch.Generator on the CPU; draws are made there so runs replay exactly.
    """

    def __init__(self, mean, std, *, size: int | tuple[int, int] | None = None, enabled: bool = True, scale=(0.35, 1.0),
                 ratio=(3 / 4, 4 / 3), jitter: float = 0.2, rotation: float = 0.0,
                 generator: torch.Generator | None = None):
        self.set_normalization(mean, std)
        self.size = (size, size) if isinstance(size, int) else size
        self.enabled, self.scale, self.ratio, self.jitter, self.rotation = enabled, scale, ratio, jitter, rotation
        self.generator = generator or torch.Generator().manual_seed(0)

    def set_normalization(self, mean, std) -> None:
        """The model's per-channel mean and std, in [0, 1] units."""
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0

    def normalize(self, images: torch.Tensor, dtype=torch.float32,
                  memory_format=torch.contiguous_format) -> torch.Tensor:
        """uint8 -> normalised float, in place on one new buffer (out-of-place ops on big CPU tensors
        cost more in allocation than in arithmetic)."""
        x = images.to(dtype=torch.float32, memory_format=memory_format)
        return self._normalize_(x).to(dtype)

    def resize(self, images: torch.Tensor, dtype=torch.float32, memory_format=torch.contiguous_format) -> torch.Tensor:
        """uint8 -> normalised float at the output size, with no augmentation (train images are cached larger)."""
        out = tuple(self.size or images.shape[-2:])
        if tuple(images.shape[-2:]) == out:
            return self.normalize(images, dtype, memory_format)
        x = F.interpolate(images.float(), size=out, mode="bilinear", antialias=True, align_corners=False)
        return self._normalize_(x).to(dtype=dtype, memory_format=memory_format)

    def _normalize_(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return x.sub_(mean).div_(std)

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=self.generator) * (high - low) + low

    def crop_flip_grid(self, n: int, height: int, width: int) -> torch.Tensor:
        """Sampling grids for a random resized crop with random flips and, with ``rotation``, a random turn
        about the crop's centre (built by broadcasting instead of ``affine_grid``'s batched matmul)."""
        area = self._uniform(n, *self.scale)
        aspect = torch.exp(self._uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1])))
        w = torch.sqrt(area * aspect).clamp(max=1.0)
        h = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (torch.rand(n, generator=self.generator) * 2 - 1) * (1 - w)
        cy = (torch.rand(n, generator=self.generator) * 2 - 1) * (1 - h)
        flip_x = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        flip_y = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        lin_x = (torch.arange(width, dtype=torch.float32) * 2 + 1) / width - 1  # pixel centres in [-1, 1]
        lin_y = (torch.arange(height, dtype=torch.float32) * 2 + 1) / height - 1
        u = (w * flip_x).view(n, 1, 1) * lin_x.view(1, 1, width)  # offsets from the crop's centre
        v = (h * flip_y).view(n, 1, 1) * lin_y.view(1, height, 1)
        if self.rotation > 0:  # turned in pixels: grid units along x are width/height times those along y
            angle = self._uniform(n, -self.rotation, self.rotation).view(n, 1, 1) * (math.pi / 180)
            cos, sin, r = torch.cos(angle), torch.sin(angle), width / height
            u, v = cos * u - sin / r * v, sin * r * u + cos * v
        gx, gy = u + cx.view(n, 1, 1), v + cy.view(n, 1, 1)
        return torch.stack((gx.expand(n, height, width), gy.expand(n, height, width)), dim=-1)

    def __call__(self, images: torch.Tensor, dtype=torch.float32,
                 memory_format=torch.contiguous_format) -> torch.Tensor:
        n, _, height, width = images.shape
        out = tuple(self.size or (height, width))
        if not self.enabled:
            return self.resize(images, dtype, memory_format)
        x = images.float()  # grid_sample is fastest on contiguous input; the layout is set at the end
        grid = self.crop_flip_grid(n, *out).to(x.device)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if self.jitter > 0:
            # brightness b and contrast c around the image mean m, fused: x' = b*c*x + b*m*(1-c)
            b = self._uniform(n, 1 - self.jitter, 1 + self.jitter).view(n, 1, 1, 1).to(x.device)
            c = self._uniform(n, 1 - self.jitter, 1 + self.jitter).view(n, 1, 1, 1).to(x.device)
            m = x.mean(dim=(1, 2, 3), keepdim=True)
            x.mul_(b * c).add_(b * m * (1 - c)).clamp_(0, 255)
        return self._normalize_(x).to(dtype=dtype, memory_format=memory_format)
