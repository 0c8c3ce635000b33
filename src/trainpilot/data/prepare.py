"""From a config to tensors ready to train on: scan, decode once (cache) or stream, drop broken files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainpilot.config import TrainConfig, input_path
from trainpilot.data.folder import DatasetError, DatasetIndex, Split, scan_dataset
from trainpilot.data.images import Geometry, StreamingImages, cache_bytes, decode_split, find_broken


@dataclass
class SplitData:
    """One split: cached uint8 images (N,3,S,S) + labels, or a streaming dataset."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    stream: StreamingImages | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def cached(self) -> bool:
        return self.images is not None


@dataclass
class PreparedData:
    classes: list[str]
    train: SplitData
    val: SplitData
    test: SplitData | None
    index: DatasetIndex
    cached: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def train_counts(self) -> list[int]:
        return torch.bincount(self.train.labels, minlength=len(self.classes)).tolist()


def train_geometry(cfg: TrainConfig) -> Geometry:
    """Train images are kept larger than the model input so random crops are not upsampled."""
    return Geometry.of(cfg, cfg.train_cache_scale)


def _load(split: Split, geo: Geometry, cache: bool, threads: int, skipped: list, progress) -> SplitData:
    if cache:
        images, labels, bad = decode_split(split, geo, threads=threads, progress=progress)
        skipped += [(str(split.paths[i]), why) for i, why in sorted(bad.items())]
        return SplitData(labels=labels, images=images)
    bad = find_broken(split, threads=threads)
    skipped += [(str(split.paths[i]), why) for i, why in sorted(bad.items())]
    split = split.drop(set(bad))
    return SplitData(labels=torch.tensor(split.labels, dtype=torch.long), stream=StreamingImages(split, geo))


def scan(cfg: TrainConfig, data_dir: str | Path | None = None) -> DatasetIndex:
    """Index ``data_dir`` (default ``cfg.data_dir``) with the config's seeded split; nothing is decoded."""
    root = Path(data_dir) if data_dir is not None else input_path(cfg, "data_dir")
    return scan_dataset(root, cfg.val_split, cfg.seed)


def prepare_data(cfg: TrainConfig, data_dir: str | Path | None = None, progress=None, threads: int | None = None,
                 with_test: bool = False, index: DatasetIndex | None = None) -> PreparedData:
    """Scan ``data_dir`` (default ``cfg.data_dir``; or take ``index``), decide on caching, decode, and
    validate what is left."""
    index = index if index is not None else scan(cfg, data_dir)
    root = index.root
    n_total = len(index.train) + len(index.val) + (len(index.test) if (with_test and index.test) else 0)
    need = cache_bytes(n_total, train_geometry(cfg))
    cache = cfg.cache_images == "always" or (cfg.cache_images == "auto" and need <= cfg.cache_max_gb * 2**30)
    threads = threads or max(1, min(8, torch.get_num_threads()))
    skipped = list(index.skipped)
    geo = Geometry.of(cfg)
    train = _load(index.train, train_geometry(cfg), cache, threads, skipped, progress)
    val = _load(index.val, geo, cache, threads, skipped, progress)
    test = _load(index.test, geo, cache, threads, skipped, progress) if (with_test and index.test) else None
    for name, split in (("train", train), ("val", val)):
        counts = torch.bincount(split.labels, minlength=len(index.classes)).tolist()
        empty = [c for c, n in zip(index.classes, counts) if n == 0]
        if empty:
            raise DatasetError(f"after skipping unreadable files, class(es) {empty} have no {name} images in '{root}'")
    return PreparedData(index.classes, train, val, test, index, cache, skipped)
