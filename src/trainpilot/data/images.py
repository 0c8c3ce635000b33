"""Decode images once into uint8 tensors, in RAM when they fit, or streamed from disk.

Decoding and resizing a JPEG costs more than a small CNN's forward pass on CPU, so the default
is to do it once per run and keep ``N x 3 x S x S`` uint8 tensors; augmentation then works on
those cached tensors (see :mod:`trainpilot.data.augment`). When the cache would not fit in
``cache_max_gb``, a DataLoader with ``num_workers`` decodes batches on the fly instead.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from trainpilot.data.folder import Split

DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def letterbox(img: Image.Image, size: int) -> Image.Image:
    """``img`` scaled to fit ``size x size`` with its aspect ratio kept, centred on its mean colour."""
    w, h = img.size
    scale = size / max(w, h)
    inner = (max(1, round(w * scale)), max(1, round(h * scale)))
    if inner != (w, h):
        img = img.resize(inner, Image.BILINEAR, reducing_gap=3.0)
    if inner == (size, size):
        return img
    fill = tuple(int(round(c)) for c in np.asarray(img, dtype=np.float32).reshape(-1, 3).mean(0))
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(img, ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return canvas


def decode_image(path: str | Path, size: int, mode: str = "squash") -> np.ndarray:
    """Read any PIL-readable image as RGB ``size x size`` uint8 (H, W, 3).

    ``mode`` is the config's ``resize_mode``: ``squash`` resizes to the square, ``letterbox`` keeps
    the aspect ratio (:func:`letterbox`). Grayscale, palette and RGBA images are converted; alpha is
    composited on white so that transparent regions do not turn black.
    """
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at reduced scale when much larger
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        img = img.convert("RGB")
        if mode == "letterbox":
            img = letterbox(img, size)
        elif img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
        return np.array(img, dtype=np.uint8)  # a writable copy: torch refuses read-only buffers


def _try_decode(path: Path, size: int, mode: str = "squash") -> np.ndarray | str:
    # A truncated JPEG is broken, not "mostly fine": refuse partial decodes.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decode_image(path, size, mode)
    except DECODE_ERRORS as err:
        return f"cannot be decoded ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'corrupt'})"


def decode_split(split: Split, size: int, threads: int = 2, progress=None,
                 mode: str = "squash") -> tuple[torch.Tensor, torch.Tensor, dict[int, str]]:
    """Decode a whole split into ``(images uint8 N,3,S,S, labels int64 N, {bad index: why})``."""
    images = torch.empty((len(split), 3, size, size), dtype=torch.uint8)
    bad: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # PIL releases the GIL while decoding
        for i, result in enumerate(pool.map(lambda p: _try_decode(p, size, mode), split.paths)):
            if isinstance(result, str):
                bad[i] = result
            else:
                images[i] = torch.from_numpy(result).permute(2, 0, 1)
            if progress is not None:
                progress(1)
    keep = torch.tensor([i for i in range(len(split)) if i not in bad], dtype=torch.long)
    labels = torch.tensor(split.labels, dtype=torch.long)
    if bad:
        images, labels = images[keep], labels[keep]
    return images.contiguous(), labels, bad


def find_broken(split: Split, threads: int = 2) -> dict[int, str]:
    """Cheap header check used when images are streamed instead of cached."""
    def check(path: Path) -> str | None:
        try:
            with Image.open(path) as img:
                img.verify()
            return None
        except DECODE_ERRORS as err:
            return f"cannot be decoded ({type(err).__name__})"
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(check, split.paths))
    return {i: why for i, why in enumerate(results) if why}


def cache_bytes(n_images: int, size: int) -> int:
    return n_images * 3 * size * size


class StreamingImages(torch.utils.data.Dataset):
    """Decode-on-demand dataset for sets too large to cache; yields uint8 CHW tensors."""

    def __init__(self, split: Split, size: int, mode: str = "squash"):
        self.split, self.size, self.mode = split, size, mode

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = decode_image(self.split.paths[i], self.size, self.mode)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), self.split.labels[i]
