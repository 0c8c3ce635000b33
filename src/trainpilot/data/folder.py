"""Find the images of a class-folder dataset, check its layout, and split it.

Two layouts are accepted:

* ``root/train/<class>/*``, ``root/val/<class>/*`` and optionally ``root/test/<class>/*``;
* ``root/<class>/*``, split into train/val by a seeded, stratified ``val_split``.

Problems a user can fix (an empty class, classes that differ between train and val, a class too
small to split) raise :class:`DatasetError` with one line naming the folder and the fix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
SPLIT_NAMES = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset layout problem the user can fix; the message is one line."""


@dataclass
class Split:
    paths: list[Path]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)

    def drop(self, bad: set[int]) -> "Split":
        keep = [i for i in range(len(self.paths)) if i not in bad]
        return Split([self.paths[i] for i in keep], [self.labels[i] for i in keep])


@dataclass
class DatasetIndex:
    root: Path
    classes: list[str]
    train: Split
    val: Split
    test: Split | None = None
    layout: str = "split"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def counts(self, split: str = "train") -> list[int]:
        labels = getattr(self, split).labels
        return [labels.count(i) for i in range(len(self.classes))]


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.name)


def _files(class_dir: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    out = []
    for p in sorted(class_dir.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(p)
        else:
            skipped.append((str(p), "not an image file (unknown extension)"))
    return out


def _scan_split(folder: Path, classes: list[str], skipped: list[tuple[str, str]]) -> Split:
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = _files(folder / name, skipped)
        if not files:
            raise DatasetError(f"class folder '{folder / name}' has no images; add images or remove the folder")
        paths += files
        labels += [label] * len(files)
    return Split(paths, labels)


def _stratified_split(files_by_class: list[list[Path]], val_split: float, seed: int) -> tuple[Split, Split]:
    rng = random.Random(seed)
    train, val = Split([], []), Split([], [])
    for label, files in enumerate(files_by_class):
        files = list(files)
        rng.shuffle(files)
        n_val = max(1, round(len(files) * val_split))
        for dst, chunk in ((val, files[:n_val]), (train, files[n_val:])):
            dst.paths += chunk
            dst.labels += [label] * len(chunk)
    return train, val


def scan_dataset(root: str | Path, val_split: float = 0.2, seed: int = 42) -> DatasetIndex:
    """Index a dataset folder (either layout) without decoding any image."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder '{root}' does not exist or is not a folder")
    skipped: list[tuple[str, str]] = []
    top = _class_dirs(root)
    names = {d.name for d in top}
    if "train" in names:
        if "val" not in names:
            raise DatasetError(f"'{root}' has train/ but no val/; add val/<class>/ folders, "
                               f"or use flat class folders with val_split")
        classes = [d.name for d in _class_dirs(root / "train")]
        if not classes:
            raise DatasetError(f"'{root / 'train'}' has no class folders")
        for split in ("val", "test"):
            if not (root / split).is_dir():
                continue
            other = [d.name for d in _class_dirs(root / split)]
            if other != classes:
                missing = sorted(set(classes) - set(other))
                extra = sorted(set(other) - set(classes))
                raise DatasetError(f"classes in '{root / split}' differ from train/: missing {missing}, "
                                   f"extra {extra}; give every split the same class folders")
        train = _scan_split(root / "train", classes, skipped)
        val = _scan_split(root / "val", classes, skipped)
        test = _scan_split(root / "test", classes, skipped) if (root / "test").is_dir() else None
        return DatasetIndex(root, classes, train, val, test, "split", skipped)

    if not top:
        raise DatasetError(f"'{root}' has no class folders; expected {root}/<class>/<image> "
                           f"or {root}/train/<class>/<image>")
    classes = [d.name for d in top]
    by_class = []
    for d in top:
        files = _files(d, skipped)
        if not files:
            raise DatasetError(f"class folder '{d}' has no images; add images or remove the folder")
        if len(files) < 2:
            raise DatasetError(f"class folder '{d}' has 1 image; a train/val split needs at least 2 per class")
        by_class.append(files)
    if len(classes) < 2:
        raise DatasetError(f"'{root}' has only one class folder ({classes[0]}); a classifier needs at least 2")
    train, val = _stratified_split(by_class, val_split, seed)
    return DatasetIndex(root, classes, train, val, None, "flat", skipped)
