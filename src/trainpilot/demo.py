"""The embedded default: a synthetic defect dataset with the seed's five classes, and a config for it."""

from __future__ import annotations

from pathlib import Path

from trainpilot.data.synthetic import make_defect_dataset

# Chosen so that the demo finishes in about 3 minutes on 2 CPU cores at >= 90% validation accuracy.
DEMO_CONFIG = {
    "model_name": "mobilenetv3_small_100",
    "image_size": 96,
    "num_epochs": 15,
    "batch_size": 32,
    "model_note": "trainpilot demo on synthetic defect images",
}


def make_demo_dataset(root: str | Path) -> Path:
    """train/val/test folders of 划痕 污点 缺失 变形 异物 (scratch, stain, missing, deformation, foreign)."""
    return make_defect_dataset(root, per_class=200, image_size=128, seed=0,
                               splits={"train": 0.7, "val": 0.15, "test": 0.15})
