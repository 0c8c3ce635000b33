"""Shared fixtures: tiny synthetic datasets and a tiny config, so end-to-end runs take seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may download weights

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NEU = SHARED / "datasets" / "neu-cls"
SEED_DIR = SHARED / "seed"

TINY = {
    "model_name": "mobilenetv3_small_050",
    "image_size": 32,
    "batch_size": 8,
    "num_epochs": 2,
    "mixed_precision": False,
    "use_tensorboard": False,
    "seed": 0,
    "recipe": "off",  # engine tests: the listed defaults; tests/test_recipe.py covers the automatic choices
    "intelligent_training": {"enabled": False},  # engine tests: no tuning unless a test turns it on
}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 classes x 16 images, train/val/test folders."""
    from trainpilot.data.synthetic import make_defect_dataset

    return make_defect_dataset(tmp_path_factory.mktemp("tiny") / "data", per_class=16, image_size=48, seed=1,
                               classes=("划痕", "污点", "异物"), splits={"train": 0.6, "val": 0.2, "test": 0.2})


@pytest.fixture
def tiny_cfg(tiny_data) -> dict:
    return {**TINY, "data_dir": str(tiny_data)}


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """One finished 2-epoch run shared by the tests that only read a run directory."""
    import trainpilot

    return trainpilot.train({**TINY, "data_dir": str(tiny_data), "use_tensorboard": True},
                            runs_dir=tmp_path_factory.mktemp("runs"), quiet=True)
