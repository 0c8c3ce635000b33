"""The automatic recipe: what it reads from a dataset, what it chooses, and that explicit settings win."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SEED_DIR, TINY
from trainpilot.config import build_config, load_config
from trainpilot.data.folder import scan_dataset
from trainpilot.data.profile import profile_dataset
from trainpilot.recipe import choose


def _write(folder, n, size, mode, rng):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = size
        arr = rng.integers(0, 255, (h, w, 3 if mode == "RGB" else 1), dtype=np.uint8)
        Image.fromarray(arr.squeeze(), mode).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def long_imbalanced(tmp_path_factory):
    """Grey 120x40 parts: 60 'ok', 12 'dent', 6 'crack' per train split (10:1)."""
    root, rng = tmp_path_factory.mktemp("long"), np.random.default_rng(0)
    for split, scale in (("train", 1), ("val", 0.5)):
        for name, n in (("ok", 60), ("dent", 12), ("crack", 6)):
            _write(root / split / name, max(2, int(n * scale)), (120, 40), "L", rng)
    return root


def test_profile_reads_counts_sizes_and_colour(long_imbalanced, tmp_path):
    p = profile_dataset(scan_dataset(long_imbalanced))
    assert p.counts == [6, 12, 60] and p.imbalance_ratio == 10 and p.majority_class == "ok"
    assert (p.median_width, p.median_height, p.median_aspect, p.elongated_share) == (120, 40, 3.0, 1.0)
    assert p.grayscale and p.images == 78
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        _write(tmp_path / c, 3, (32, 32), "RGB", rng)
    colour = profile_dataset(scan_dataset(tmp_path))
    assert not colour.grayscale and colour.elongated_share == 0 and colour.imbalance_ratio == 1


def test_recipe_reads_the_data(long_imbalanced):
    cfg = build_config({"data_dir": str(long_imbalanced)})
    got = {c.key: c for c in choose(cfg, profile_dataset(scan_dataset(long_imbalanced)), set(cfg.model_fields_set))}
    assert got["monitor"].value == "val_macro_f1" and "10:1" in got["monitor"].reason
    assert got["model_name"].value == "tf_efficientnet_lite0" and got["use_pretrained"].value is True
    assert got["resize_mode"].value == "letterbox" and "100%" in got["resize_mode"].reason
    # 3:1 parts: a 3:1 input, as many pixels as the smallest square (128 px) at least: 224 x 72
    assert got["input_aspect"].value == 3.0 and "rotate_to_fit" not in got  # all of them wide
    assert got["image_size"].value == 224 and "a 224x72 input" in got["image_size"].reason
    assert got["sampler"].value == "sqrt" and "3.2:1 per batch" in got["sampler"].reason
    assert got["num_epochs"].value == 60  # 78 images: the most epochs the recipe gives


def test_explicit_settings_and_the_seed_config_win(long_imbalanced):
    profile = profile_dataset(scan_dataset(long_imbalanced))
    cfg = load_config(None, [f"data_dir={long_imbalanced}", "model_name=resnet18", "monitor=val_loss",
                             "sampler=shuffle", "num_epochs=3"])
    got = {c.key: c for c in choose(cfg, profile, set(cfg.model_fields_set))}
    assert not {"model_name", "monitor", "sampler", "num_epochs"} & set(got)
    assert got["use_pretrained"].value is False and "no offline ImageNet weights for resnet18" in got["use_pretrained"].reason
    seed = load_config(SEED_DIR / "original_config.json", [f"data_dir={long_imbalanced}"])
    seed_keys = set(json.loads((SEED_DIR / "original_config.json").read_text(encoding="utf-8")))
    auto = {c.key for c in choose(seed, profile, set(seed.model_fields_set))}
    assert auto and not auto & seed_keys  # only keys the seed config does not have
    assert choose(build_config({"recipe": "off"}), profile, {"recipe"}) == []


def test_a_run_prints_and_records_its_choices(long_imbalanced, tmp_path, capsys):
    import trainpilot

    cfg = {**TINY, "recipe": "auto", "data_dir": str(long_imbalanced), "num_epochs": 1}
    run = trainpilot.train(cfg, runs_dir=tmp_path)
    err = capsys.readouterr().err
    assert "auto recipe" in err and "sampler = sqrt" in err and "resize_mode = letterbox" in err
    recorded = json.loads((run.dir / "run.json").read_text(encoding="utf-8"))["recipe"]
    assert {c["key"] for c in recorded["choices"]} == {"monitor", "use_pretrained", "resize_mode", "input_aspect",
                                                       "sampler"}
    assert recorded["profile"]["imbalance_ratio"] == 10
    assert run.summary["auto"] == {"monitor": "val_macro_f1", "use_pretrained": False, "resize_mode": "letterbox",
                                   "input_aspect": 3.0, "sampler": "sqrt"}
    assert run.config.sampler == "sqrt" and run.config.resize_mode == "letterbox"
    resumed = trainpilot.train(resume=run.dir, quiet=True)  # nothing is chosen again, the record stays
    assert json.loads((run.dir / "run.json").read_text(encoding="utf-8"))["recipe"] == recorded
    assert resumed.summary["auto"] == run.summary["auto"]


def test_a_time_budget_bounds_the_input_size(long_imbalanced, monkeypatch):
    """With time_budget_minutes, the size shrinks (in steps of 32, not below 128 px) until 10 epochs fit with
    pretrained weights, 15 from scratch."""
    from trainpilot import recipe

    profile = profile_dataset(scan_dataset(long_imbalanced))
    wide = type(profile)(**{**profile.to_dict(), "median_width": 400, "median_height": 130, "median_long_side": 400,
                            "median_aspect": 1.2, "median_width_ratio": 1.2})  # mostly near-square: a square input
    monkeypatch.setattr(recipe, "seconds_per_image", lambda model, k, size, batch, bf16=False: 0.01)  # 10 ms at 128 px
    sizes = {}
    for minutes in (0, 60, 0.45, 0.2):
        cfg = build_config({"time_budget_minutes": minutes})
        sizes[minutes] = {c.key: c for c in choose(cfg, wide, {"time_budget_minutes"})}
    assert sizes[0.45]["use_pretrained"].value is True
    assert sizes[0]["image_size"].value == sizes[60]["image_size"].value == 224
    assert "instead" not in sizes[60]["image_size"].reason
    # 10 epochs x (78 + 39/3 images) x 13 ms x (s/128)^2 <= 0.9 x 27 s  ->  s <= 183 px  ->  160 px
    assert sizes[0.45]["image_size"].value == 160
    assert "160 px instead, so that 10 epochs fit" in sizes[0.45]["image_size"].reason
    assert sizes[0.2]["image_size"].value == 128
    # from scratch, 15 epochs must fit, timed at its lower bound of 64 px: s <= 75 px  ->  64 px
    scratch = {c.key: c for c in choose(build_config({"time_budget_minutes": 0.45, "use_pretrained": False}), wide,
                                        {"time_budget_minutes", "use_pretrained"})}
    assert scratch["image_size"].value == 64 and "so that 15 epochs fit" in scratch["image_size"].reason
    wider = type(profile)(**{**wide.to_dict(), "median_aspect": 3.0, "median_width_ratio": 3.0})
    got = {c.key: c for c in choose(build_config({"time_budget_minutes": 0.45}), wider, {"time_budget_minutes"})}
    # a 3:1 input of as many pixels: s^2 / 3 <= 183^2  ->  s <= 317 px  ->  the long side 288 instead of 160
    assert got["input_aspect"].value == 3.0 and got["image_size"].value == 288
    assert "a 288x96 input" in got["image_size"].reason
    # the probe times what the run will train: bf16 where it is faster (mixed_precision), in batches of batch_size
    timed = []
    monkeypatch.setattr(recipe, "seconds_per_image", lambda model, k, size, batch, bf16=False:
                        timed.append((batch, bf16)) or (0.005 if bf16 else 0.01))
    fast = {c.key: c for c in choose(build_config({"time_budget_minutes": 0.45, "batch_size": 16}), wide,
                                     {"time_budget_minutes", "batch_size"})}
    assert timed == [(16, False), (16, True)] and fast["image_size"].value == 224  # s <= 183 x sqrt(2) = 259 px
    timed.clear()
    fp32 = {c.key: c for c in choose(build_config({"time_budget_minutes": 0.45, "mixed_precision": False}), wide,
                                     {"time_budget_minutes", "mixed_precision"})}
    assert timed == [(32, False)] and fp32["image_size"].value == 160


def test_mixed_orientations_are_turned_to_fit_one_input(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("ok", "dent"):
            _write(tmp_path / split / name / "wide", 7, (150, 60), "L", rng)
            _write(tmp_path / split / name / "tall", 3, (60, 140), "L", rng)
    p = profile_dataset(scan_dataset(tmp_path))
    assert p.images == 20 and p.wide_share == 0.7 and p.elongated_share == 1.0
    got = {c.key: c for c in choose(build_config({}), p, set())}
    assert got["rotate_to_fit"].value is True and "30% of the elongated images are tall" in got["rotate_to_fit"].reason
    assert got["input_aspect"].value == 2.5  # the median long/short ratio, with every image turned wide
    kept = {c.key: c for c in choose(build_config({"rotate_to_fit": False}), p, {"rotate_to_fit"})}
    assert "rotate_to_fit" not in kept and kept["input_aspect"].value == 2.5  # median width/height: still wide
