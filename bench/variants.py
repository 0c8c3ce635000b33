"""The benchmark datasets beyond the two in ../shared: variants that look like our users' data.

    .venv/bin/python bench/variants.py OUT_DIR      # writes OUT_DIR/ok-majority and OUT_DIR/xsdd-majority

* ``ok-majority`` (synthetic, grayscale, non-square): 70% defect-free images; five defect classes from
  60 down to 20 training images; sizes from 100x160 to 600x300 px; each defect is drawn small (a
  48-96 px patch) into a large surface, so it covers a few percent of the image.
* ``ok-majority-bigtest``: only a test split, six times ok-majority's, of images drawn the same way but
  none of which is in ok-majority: ``trainpilot evaluate RUN --data OUT_DIR/ok-majority-bigtest`` scores a
  run's checkpoint where one image no longer moves a small class's F1 by 10 points.
* ``xsdd-majority`` (real): X-SDD with its largest class whole and the six others cut to 20 training
  images each (about 77% one class, 20:1), val/test untouched; links, not copies.
"""

from __future__ import annotations

import argparse
import random
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from trainpilot.data.synthetic import DEFECT_CLASSES, render_defect, render_surface

ROOT = Path(__file__).resolve().parents[1]
XSDD = ROOT.parent / "shared" / "datasets" / "xsdd"
OK = "ok"
# training images per class; val and test get a quarter of that each (at least 5)
OK_MAJORITY_TRAIN = {OK: 420, DEFECT_CLASSES[0]: 60, DEFECT_CLASSES[1]: 40, DEFECT_CLASSES[2]: 30,
                     DEFECT_CLASSES[3]: 25, DEFECT_CLASSES[4]: 20}


def _small_defect_image(rng: np.random.Generator, kind: int | None) -> Image.Image:
    """A large non-square surface with one small patch blended in (a defect, or more surface for ``ok``)."""
    w, h = int(rng.integers(160, 601)), int(rng.integers(100, 301))
    if rng.random() < 0.3:
        w, h = h, w  # some parts are photographed upright
    grey = render_surface(rng, w, h)
    d = int(rng.integers(48, 97))
    patch = render_defect(kind, d, rng).astype(np.float32).mean(-1) / 255 if kind is not None else render_surface(rng, d, d)
    x0, y0 = int(rng.integers(0, w - d + 1)), int(rng.integers(0, h - d + 1))
    region = grey[y0:y0 + d, x0:x0 + d]
    yy, xx = np.mgrid[0:d, 0:d].astype(np.float32)
    r = np.hypot(xx - d / 2, yy - d / 2) / (d / 2)
    mask = np.clip((1.0 - r) / 0.35, 0, 1)  # feathered disc: no square edge gives the class away
    patch = patch - patch.mean() + region.mean()
    grey[y0:y0 + d, x0:x0 + d] = region * (1 - mask) + patch * mask
    grey += rng.standard_normal(grey.shape, dtype=np.float32) * 0.015
    return Image.fromarray((np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8), "L")


def _write_class(dst: Path, split: str, name: str, indices: range, seed: int) -> None:
    kind = None if name == OK else DEFECT_CLASSES.index(name)
    out = dst / split / name
    out.mkdir(parents=True, exist_ok=True)
    for i in indices:  # image i of split/name is the same on every machine and in every variant
        rng = np.random.default_rng([seed, zlib.crc32(f"{split}/{name}".encode()), i])
        _small_defect_image(rng, kind).save(out / f"{i:04d}.png", compress_level=1)


def ok_majority(dst: Path, seed: int = 0) -> Path:
    """Write the synthetic defect-free-majority set (train/val/test) under ``dst``; reuse it when present."""
    if (dst / "test").is_dir():
        return dst
    for name, n_train in OK_MAJORITY_TRAIN.items():
        n_eval = max(5, n_train // 4)
        for split, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
            _write_class(dst, split, name, range(n), seed)
    return dst


def ok_majority_bigtest(dst: Path, factor: int = 6, seed: int = 0) -> Path:
    """A test split ``factor`` times ok-majority's, from the image indices after ok-majority's own test images."""
    if (dst / "test").is_dir():
        return dst
    for name, n_train in OK_MAJORITY_TRAIN.items():
        n_eval = max(5, n_train // 4)
        _write_class(dst, "test", name, range(n_eval, n_eval * (factor + 1)), seed)
    return dst


def xsdd_majority(dst: Path, keep: int = 20, data: Path = XSDD) -> Path:
    """X-SDD with every class but the largest cut to ``keep`` training images (seeded), as symlinks."""
    if (dst / "test").is_dir():
        return dst
    train = {d.name: sorted(d.iterdir()) for d in sorted((data / "train").iterdir())}
    largest = max(train, key=lambda c: len(train[c]))
    for split in ("train", "val", "test"):
        for d in sorted((data / split).iterdir()):
            out = dst / split / d.name
            out.mkdir(parents=True, exist_ok=True)
            files = sorted(d.iterdir())
            if split == "train" and d.name != largest:
                files = random.Random(0).sample(files, min(keep, len(files)))
            for f in files:
                (out / f.name).symlink_to(f.resolve())
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for path in (ok_majority(args.out / "ok-majority"), ok_majority_bigtest(args.out / "ok-majority-bigtest"),
                 xsdd_majority(args.out / "xsdd-majority")):
        split = path / ("train" if (path / "train").is_dir() else "test")
        counts = {d.name: len(list(d.iterdir())) for d in sorted(split.iterdir())}
        print(path, counts)


if __name__ == "__main__":
    main()
