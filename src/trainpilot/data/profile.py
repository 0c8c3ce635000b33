"""What a dataset is, read at scan time without decoding it: class counts, image sizes, colour.

The automatic recipe (:mod:`trainpilot.recipe`) chooses settings from this profile. Sizes come from
the image headers (a few milliseconds per thousand files); colour from small thumbnails of a sample.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from trainpilot.data.folder import DatasetIndex
from trainpilot.data.images import DECODE_ERRORS, ORIENTATION, to_rgb

ELONGATED = 1.25  # long side / short side beyond which squashing to a square visibly distorts a part
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class DataProfile:
    images: int                 # training images
    val_images: int
    classes: list[str]
    counts: list[int]           # training images per class
    imbalance_ratio: float      # largest / smallest class
    majority_share: float       # share of the largest class
    median_width: int
    median_height: int
    min_side: int
    max_side: int
    median_long_side: int
    median_aspect: float        # long / short side
    elongated_share: float      # share of images with long/short > ELONGATED
    grayscale: bool
    wide_share: float = 1.0     # of the elongated images, the share wider than high (older profiles: unknown)
    median_width_ratio: float = 1.0  # median width / height (older profiles: unknown)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def majority_class(self) -> str:
        return self.classes[self.counts.index(max(self.counts))]

    @property
    def minority_class(self) -> str:
        return self.classes[self.counts.index(min(self.counts))]


def _size(path) -> tuple[int, int, str] | None:
    try:
        with Image.open(path) as img:
            w, h = img.size
            # shown turned by 90 degrees (to_rgb); a PNG's EXIF may follow its pixels, so only a header's is read
            header_exif = img.format != "PNG" or "exif" in img.info
            if header_exif and img.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8):
                w, h = h, w
            return w, h, img.mode
    except DECODE_ERRORS:
        return None


def _is_grey(path, mode: str) -> bool:
    if mode in GREY_MODES:
        return True
    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))
            arr = np.asarray(to_rgb(img).resize((32, 32)), dtype=np.int16)
    except DECODE_ERRORS:
        return True  # a broken file says nothing about colour; it is skipped later
    return int(np.abs(arr - arr.mean(-1, keepdims=True)).max()) <= 8


def profile_dataset(index: DatasetIndex, max_images: int = 2000, colour_samples: int = 48, seed: int = 0) -> DataProfile:
    """Profile the training split of ``index`` (a seeded sample of at most ``max_images`` headers)."""
    paths = list(index.train.paths)
    rng = random.Random(seed)
    sample = paths if len(paths) <= max_images else rng.sample(paths, max_images)
    sizes = [s for s in map(_size, sample) if s is not None] or [(1, 1, "RGB")]
    widths, heights = [w for w, _, _ in sizes], [h for _, h, _ in sizes]
    longs = [max(w, h) for w, h, _ in sizes]
    aspects = [max(w, h) / max(1, min(w, h)) for w, h, _ in sizes]
    elongated = [w > h for (w, h, _), a in zip(sizes, aspects) if a > ELONGATED] or [True]
    colour = rng.sample(range(len(sizes)), min(colour_samples, len(sizes)))
    if len(sample) == len(sizes):  # RGB files may hold grey pixels (neu-cls): look at a few thumbnails
        grey = all(_is_grey(sample[i], sizes[i][2]) for i in colour)
    else:
        grey = all(mode in GREY_MODES for _, _, mode in sizes)
    counts = index.counts("train")
    return DataProfile(
        images=len(paths), val_images=len(index.val), classes=list(index.classes), counts=counts,
        imbalance_ratio=round(max(counts) / max(1, min(counts)), 3), majority_share=round(max(counts) / max(1, sum(counts)), 4),
        median_width=int(statistics.median(widths)), median_height=int(statistics.median(heights)),
        min_side=min(min(w, h) for w, h, _ in sizes), max_side=max(longs),
        median_long_side=int(statistics.median(longs)), median_aspect=round(statistics.median(aspects), 3),
        elongated_share=round(sum(a > ELONGATED for a in aspects) / len(aspects), 4), grayscale=bool(grey),
        wide_share=round(sum(elongated) / len(elongated), 4),
        median_width_ratio=round(statistics.median(w / max(1, h) for w, h, _ in sizes), 3))


def describe(p: DataProfile) -> str:
    """One line for people: the profile's numbers that the recipe reads."""
    colour = "grayscale" if p.grayscale else "colour"
    return (f"{p.images} training images in {len(p.classes)} classes ({max(p.counts)} to {min(p.counts)} per class, "
            f"{p.imbalance_ratio:.3g}:1), {colour}, median {p.median_width}x{p.median_height} px "
            f"(sides {p.min_side}-{p.max_side}, {p.elongated_share:.0%} longer than {ELONGATED}:1)")



def describe_dict(profile: dict) -> str:
    """:func:`describe` for a profile read back from run.json."""
    return describe(DataProfile(**profile))
