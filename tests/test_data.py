"""Dataset discovery, validation, decoding, caching, class weights and augmentation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from trainpilot.config import build_config
from trainpilot.data.augment import BatchAugment
from trainpilot.data.folder import DatasetError, scan_dataset
from trainpilot.data.prepare import prepare_data
from trainpilot.data.weights import compute_class_weights


def _img(path, mode="RGB", size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new(mode, size)
    if mode == "P":
        img.putpalette([i % 256 for i in range(768)])
    img.save(path)


def _flat(root, classes=("甲", "乙"), n=5):
    for c in classes:
        for i in range(n):
            _img(root / c / f"{i}.png")
    return root


def test_flat_folders_split_seeded_and_stratified(tmp_path):
    root = _flat(tmp_path, n=10)
    a = scan_dataset(root, val_split=0.2, seed=3)
    b = scan_dataset(root, val_split=0.2, seed=3)
    c = scan_dataset(root, val_split=0.2, seed=4)
    assert a.classes == ["乙", "甲"] or a.classes == sorted(["甲", "乙"])
    assert a.counts("val") == [2, 2] and a.counts("train") == [8, 8]
    assert a.val.paths == b.val.paths and a.val.paths != c.val.paths


def test_split_layout_and_unicode_names(tiny_data):
    idx = scan_dataset(tiny_data)
    assert idx.layout == "split" and idx.classes == sorted(["划痕", "污点", "异物"])
    assert idx.test is not None and len(idx.test) > 0


def test_modes_are_converted_and_broken_files_skipped(tmp_path):
    root = _flat(tmp_path / "d", n=3)
    _img(root / "甲" / "gray.png", "L")
    _img(root / "甲" / "rgba.png", "RGBA")
    _img(root / "乙" / "pal.png", "P")
    (root / "乙" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "乙" / "notes.txt").write_text("hello")
    cfg = build_config({"data_dir": str(root), "image_size": 24, "val_split": 0.3})
    data = prepare_data(cfg)
    skipped = {p.rsplit("/", 1)[-1] for p, _ in data.skipped}
    assert skipped == {"broken.jpg", "notes.txt"}
    assert data.val.images.shape[1:] == (3, 24, 24) and data.train.images.dtype == torch.uint8
    assert data.train.images.shape[1:] == (3, 30, 30)  # train images are cached at train_cache_scale (1.25) x
    assert len(data.train) + len(data.val) == 9


def test_streaming_matches_cache(tmp_path):
    root = _flat(tmp_path / "d", n=4)
    cached = prepare_data(build_config({"data_dir": str(root), "image_size": 16, "cache_images": "always"}))
    streamed = prepare_data(build_config({"data_dir": str(root), "image_size": 16, "cache_images": "never"}))
    assert not streamed.cached and streamed.train.stream is not None
    x0, y0 = streamed.train.stream[0]
    assert torch.equal(x0, cached.train.images[0]) and y0 == int(cached.train.labels[0])


@pytest.mark.parametrize("make,match", [
    (lambda r: (r / "a").mkdir(parents=True) or _flat(r, ("b",)), "has no images"),
    (lambda r: _img(r / "a" / "1.png") or _flat(r, ("b",)), "needs at least 2"),
    (lambda r: _flat(r / "train", ("a", "b")) and _flat(r / "val", ("a", "c")), "differ from train"),
    (lambda r: _flat(r / "train", ("a", "b")), "no val/"),
    (lambda r: _flat(r, ("a",)), "only one class"),
])
def test_layout_errors_are_clear(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(DatasetError, match=match):
        scan_dataset(tmp_path)


def test_class_weight_strategies():
    classes, counts = ["a", "b"], [90, 10]
    balanced = compute_class_weights(counts, classes, "balanced")
    assert balanced == {"a": pytest.approx(100 / 180), "b": pytest.approx(100 / 20)}
    inverse = compute_class_weights(counts, classes, "inverse")
    assert sum(inverse.values()) == pytest.approx(2) and inverse["b"] > inverse["a"]
    log_inv = compute_class_weights(counts, classes, "log_inverse")
    assert sum(log_inv.values()) == pytest.approx(2)
    assert 1 < log_inv["b"] / log_inv["a"] < inverse["b"] / inverse["a"]
    assert compute_class_weights(counts, classes, "none") == {"a": 1.0, "b": 1.0}
    assert compute_class_weights(counts, classes, "custom", {"a": 2, "b": 3}) == {"a": 2.0, "b": 3.0}
    with pytest.raises(ValueError, match="missing"):
        compute_class_weights(counts, classes, "custom", {"a": 2})


def test_augmentation_is_batched_seeded_and_switchable():
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    aug = lambda on, s: BatchAugment((0.5,) * 3, (0.5,) * 3, enabled=on, generator=torch.Generator().manual_seed(s))  # noqa: E731
    a, b, c = aug(True, 1)(x), aug(True, 1)(x), aug(True, 2)(x)
    off = aug(False, 1)(x)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(off, (x.float() / 255 - 0.5) / 0.5, atol=1e-5)
    assert not torch.allclose(a, off)


@pytest.mark.parametrize("kind", ["16-bit", "12-bit", "32-bit", "float", "float 0-255"])
def test_deep_images_decode_as_their_8_bit_originals(tmp_path, kind):
    import numpy as np

    from conftest import NEU
    from trainpilot.data.images import Geometry, decode_image

    source = sorted((NEU / "train" / "crazing").glob("*.jpg"))[0]
    grey = np.asarray(Image.open(source).convert("L"), dtype=np.float64)
    deep = {"16-bit": (grey * 257).astype(np.uint16), "12-bit": (grey * 4095 / 255).round().astype(np.uint16),
            "32-bit": (grey * 257).astype(np.int32), "float": (grey / 255).astype(np.float32),
            "float 0-255": grey.astype(np.float32)}[kind]
    path = tmp_path / "deep.tiff"
    Image.fromarray(deep).save(path)
    original = tmp_path / "original.png"
    Image.fromarray(grey.astype(np.uint8)).save(original)
    geo = Geometry(64, 64)
    got, want = decode_image(path, geo).astype(int), decode_image(original, geo).astype(int)
    assert np.abs(got - want).max() <= 1  # a plain convert("RGB") clips the integer ones to white


def test_exif_orientation_is_applied_in_decoding_profiling_and_thumbnails(tmp_path):
    import base64
    import io

    import numpy as np

    from trainpilot.data.images import ORIENTATION, Geometry, decode_image
    from trainpilot.data.profile import _size
    from trainpilot.data.thumbs import thumbnail

    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 30, 20))  # white left half
    exif = img.getexif()
    exif[ORIENTATION] = 6  # shown turned 90 degrees clockwise: 20 wide, 60 tall, white on top
    path = tmp_path / "cam.jpg"
    img.save(path, exif=exif, quality=95)
    assert _size(path)[:2] == (20, 60)
    arr = decode_image(path, Geometry(60, 20)).mean(axis=(1, 2))
    assert arr[:25].min() > 200 and arr[-25:].max() < 50
    thumb = Image.open(io.BytesIO(base64.b64decode(thumbnail(path, size=30).split(",", 1)[1])))
    assert thumb.size == (10, 30) and np.asarray(thumb.convert("L"))[:10].mean() > 200
