"""Decode images once into uint8 tensors, in RAM when they fit, or streamed from disk.

Decoding and resizing a JPEG costs more than a small CNN's forward pass on CPU, so the default
is to do it once per run and keep ``N x 3 x H x W`` uint8 tensors; augmentation then works on
those cached tensors (see :mod:`trainpilot.data.augment`). When the cache would not fit in
``cache_max_gb``, a DataLoader with ``num_workers`` decodes batches on the fly instead.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from trainpilot.data.folder import Split

ORIENTATION = ExifTags.Base.Orientation
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Geometry:
    """How a file becomes the model's ``height x width`` input (the config's image_size, input_aspect,
    resize_mode and rotate_to_fit)."""

    height: int
    width: int
    mode: str = "squash"     # squash: resize to height x width; letterbox: keep the aspect ratio and pad
    rotate: bool = False     # turn an image whose orientation differs from the input's by 90 degrees first

    @classmethod
    def of(cls, cfg, scale: float = 1.0) -> "Geometry":
        """From a TrainConfig or its dict (a checkpoint's; older runs: a square, no rotation); ``scale``
        enlarges both sides (the train cache)."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
        h, w = input_hw(int(get("image_size", 160)), float(get("input_aspect", 1.0) or 1.0))
        return cls(round(h * scale), round(w * scale), str(get("resize_mode", "squash")),
                   bool(get("rotate_to_fit", False)))


def input_hw(size: int, aspect: float = 1.0) -> tuple[int, int]:
    """The input's (height, width): ``size`` is the long side, ``aspect`` is width / height; the short side
    is a multiple of 8 (at least 16)."""
    if abs(aspect - 1.0) < 1e-6:
        return size, size
    short = max(16, 8 * round(size / max(aspect, 1 / aspect) / 8))
    return (short, size) if aspect > 1 else (size, short)


def letterbox(img: Image.Image, width: int, height: int) -> Image.Image:
    """``img`` scaled to fit ``width x height`` with its aspect ratio kept, centred on its mean colour."""
    w, h = img.size
    scale = min(width / w, height / h)
    inner = (max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale))))
    if inner != (w, h):
        img = img.resize(inner, Image.BILINEAR, reducing_gap=3.0)
    if inner == (width, height):
        return img
    fill = tuple(int(round(c)) for c in np.asarray(img, dtype=np.float32).reshape(-1, 3).mean(0))
    canvas = Image.new("RGB", (width, height), fill)
    canvas.paste(img, ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as an 8-bit RGB image, as a person would see it.

    - the EXIF orientation is applied (a camera's portrait JPEG stands upright);
    - alpha is composited on white, so that transparent regions do not turn black;
    - 16-bit and 32-bit integer images (machine-vision cameras: 10 to 16 bits in a 16-bit file) are scaled
      from the smallest even bit depth that holds their largest value, where a plain conversion clips
      everything above 255 to white;
    - float images are scaled from [0, 1] when they lie in it, else stretched from their min to their max.
    """
    if img.getexif().get(ORIENTATION, 1) != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    elif img.mode == "F" or img.mode.startswith("I"):
        img = Image.fromarray(_deep_to_uint8(np.asarray(img)))
    return img.convert("RGB")


def _deep_to_uint8(a: np.ndarray) -> np.ndarray:
    floats = a.dtype.kind == "f"
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if floats and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif lo < 0 or (floats and hi > 255):
        a = (a - lo) * (255.0 / max(hi - lo, 1e-12))
    elif hi > 255:
        a = a * (255.0 / (2.0 ** (2 * math.ceil(math.log2(hi + 1) / 2)) - 1))
    return np.clip(a, 0, 255).round().astype(np.uint8)


def decode_image(path: str | Path, geo: Geometry) -> np.ndarray:
    """Read any PIL-readable image as RGB ``geo.height x geo.width`` uint8 (H, W, 3).

    ``geo.mode`` is the config's ``resize_mode``: ``squash`` resizes, ``letterbox`` keeps the aspect
    ratio (:func:`letterbox`). With ``geo.rotate``, a tall image for a wide input (or the reverse) is
    turned by 90 degrees first. Every mode is converted by :func:`to_rgb`.
    """
    width, height = geo.width, geo.height
    with Image.open(path) as img:
        img.draft("RGB", (width, height))  # JPEG: decode at reduced scale when much larger
        img = to_rgb(img)
        if geo.rotate and width != height and (img.width > img.height) != (width > height) \
                and img.width != img.height:
            img = img.transpose(Image.Transpose.ROTATE_90)
        if geo.mode == "letterbox":
            img = letterbox(img, width, height)
        elif img.size != (width, height):
            img = img.resize((width, height), Image.BILINEAR, reducing_gap=3.0)
        return np.array(img, dtype=np.uint8)  # a writable copy: torch refuses read-only buffers


def _try_decode(path: Path, geo: Geometry) -> np.ndarray | str:
    # A truncated JPEG is broken, not "mostly fine": refuse partial decodes.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decode_image(path, geo)
    except DECODE_ERRORS as err:
        return f"cannot be decoded ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'corrupt'})"


def decode_split(split: Split, geo: Geometry, threads: int = 2,
                 progress=None) -> tuple[torch.Tensor, torch.Tensor, dict[int, str]]:
    """Decode a whole split into ``(images uint8 N,3,H,W, labels int64 N, {bad index: why})``."""
    images = torch.empty((len(split), 3, geo.height, geo.width), dtype=torch.uint8)
    bad: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # PIL releases the GIL while decoding
        for i, result in enumerate(pool.map(lambda p: _try_decode(p, geo), split.paths)):
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


def cache_bytes(n_images: int, geo: Geometry) -> int:
    return n_images * 3 * geo.height * geo.width


class StreamingImages(torch.utils.data.Dataset):
    """Decode-on-demand dataset for sets too large to cache; yields uint8 CHW tensors."""

    def __init__(self, split: Split, geo: Geometry):
        self.split, self.geo = split, geo

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = decode_image(self.split.paths[i], self.geo)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), self.split.labels[i]
