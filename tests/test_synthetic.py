"""Tests for the synthetic defect dataset generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainpilot.data.synthetic import DEFECT_CLASSES, MARKER_NAME, make_defect_dataset

SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.png"))}


def test_class_names() -> None:
    assert DEFECT_CLASSES == ("划痕", "污点", "缺失", "变形", "异物")


def test_flat_layout_rgb_and_size(tmp_path: Path) -> None:
    root = make_defect_dataset(tmp_path / "ds", per_class=3, image_size=48)
    assert root == tmp_path / "ds"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(DEFECT_CLASSES)
    for cls in DEFECT_CLASSES:
        images = sorted((root / cls).glob("*.png"))
        assert len(images) == 3
        for path in images:
            with Image.open(path) as im:
                assert im.mode == "RGB" and im.size == (48, 48)
    assert (root / MARKER_NAME).is_file()


def test_deterministic_and_order_independent(tmp_path: Path) -> None:
    a = _files(make_defect_dataset(tmp_path / "a", per_class=4, image_size=40, seed=7))
    b = _files(make_defect_dataset(tmp_path / "b", per_class=4, image_size=40, seed=7))
    assert a == b and len(a) == 20
    # A class's images don't depend on which other classes are generated.
    c = _files(make_defect_dataset(tmp_path / "c", per_class=4, image_size=40, seed=7,
                                   classes=list(reversed(DEFECT_CLASSES[2:]))))
    assert c == {k: v for k, v in a.items() if k.split("/")[0] in DEFECT_CLASSES[2:]}
    other = _files(make_defect_dataset(tmp_path / "d", per_class=4, image_size=40, seed=8))
    assert other.keys() == a.keys() and all(other[k] != a[k] for k in a)


def test_split_layout_counts_and_override(tmp_path: Path) -> None:
    root = make_defect_dataset(tmp_path, per_class=20, image_size=32, splits=SPLITS,
                               counts={"异物": 10})
    for cls in DEFECT_CLASSES:
        n = {s: len(list((root / s / cls).glob("*.png"))) for s in SPLITS}
        expected = {"train": 7, "val": 2, "test": 1} if cls == "异物" else \
            {"train": 14, "val": 3, "test": 3}
        assert n == expected
    assert not any((root / cls).exists() for cls in DEFECT_CLASSES)  # no flat folders
    # Splits are disjoint.
    names = [p.relative_to(root / p.parts[-3]) for p in root.rglob("*.png")]
    assert len(names) == len(set(names)) == 4 * 20 + 10


def test_tiny_split_gives_every_split_an_image(tmp_path: Path) -> None:
    root = make_defect_dataset(tmp_path, per_class=3, image_size=24, splits=SPLITS,
                               classes=["划痕", "污点"])
    for split in SPLITS:
        for cls in ("划痕", "污点"):
            assert len(list((root / split / cls).glob("*.png"))) == 1


def test_marker_skips_regeneration(tmp_path: Path) -> None:
    root = make_defect_dataset(tmp_path, per_class=2, image_size=32, classes=["划痕", "异物"])
    marker = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    assert marker["classes"] == ["划痕", "异物"] and marker["per_class"] == 2
    victim = root / "划痕" / "0000.png"
    victim.unlink()
    make_defect_dataset(root, per_class=2, image_size=32, classes=["划痕", "异物"])
    assert not victim.exists()  # same arguments: nothing was touched
    make_defect_dataset(root, per_class=1, image_size=32, classes=["划痕", "异物"])
    assert victim.exists()  # different arguments: regenerated ...
    assert not (root / "异物" / "0001.png").exists()  # ... and stale images removed
    make_defect_dataset(root, per_class=3, image_size=32, classes=["划痕", "异物"], splits=SPLITS)
    assert sorted(p.name for p in root.iterdir()) == sorted([MARKER_NAME, *SPLITS])


def test_class_subset_and_custom_names(tmp_path: Path) -> None:
    root = make_defect_dataset(tmp_path, per_class=2, image_size=32, classes=["ok", "ng", "x"])
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["ng", "ok", "x"]
    with pytest.raises(ValueError):
        make_defect_dataset(tmp_path / "bad", per_class=2, classes=["a"], counts={"b": 1})


def _features(path: Path) -> np.ndarray:
    """A few global statistics a defect would move: dark area, colour, thin lines, blobs."""
    rgb = np.asarray(Image.open(path), dtype=np.float32) / 255
    g = rgb.mean(-1)
    # 8x8 block means with the illumination plane removed: blotches and bumps stand out.
    n = g.shape[0] // 8
    blocks = g[: n * 8, : n * 8].reshape(n, 8, n, 8).mean((1, 3)).ravel()
    yy, xx = np.mgrid[0:n, 0:n]
    plane = np.stack([np.ones(n * n), xx.ravel(), yy.ravel()], 1)
    blobs = blocks - plane @ np.linalg.lstsq(plane, blocks, rcond=None)[0]
    # Deviation from the 3x3 local mean: thin scratches and particles stand out.
    pad = np.pad(g, 1, mode="edge")
    local = sum(pad[i:i + g.shape[0], j:j + g.shape[1]] for i in range(3) for j in range(3)) / 9
    fine = np.abs(g - local)
    saturation = rgb.max(-1) - rgb.min(-1)
    return np.array([np.log1p(100 * (g < 0.1).mean()), np.percentile(saturation, 99.9),
                     np.percentile(fine, 99.5), np.percentile(fine, 99.9) / (fine.mean() + 1e-3),
                     blobs.min(), blobs.max(), blobs.std()])


def test_classes_separable_by_trivial_model(tmp_path: Path) -> None:
    """Guards against degenerate (invisible) defects: nearest centroid on global stats."""
    root = make_defect_dataset(tmp_path, per_class=40, image_size=64, seed=3,
                               splits={"train": 0.5, "test": 0.5})

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for label, cls in enumerate(DEFECT_CLASSES):
            for p in sorted((root / split / cls).glob("*.png")):
                xs.append(_features(p))
                ys.append(label)
        return np.array(xs), np.array(ys)

    xtr, ytr = load("train")
    xte, yte = load("test")
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    centroids = np.stack([xtr[ytr == k].mean(0) for k in range(len(DEFECT_CLASSES))])
    pred = np.argmin(((xte[:, None] - centroids) ** 2).sum(-1), 1)
    accuracy = (pred == yte).mean()
    assert accuracy > 0.5, accuracy
