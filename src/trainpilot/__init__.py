"""trainpilot: train image classifiers from a folder of images, and tune them while they train."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["train", "TrainConfig", "load_config", "Run", "__version__"]


def __getattr__(name: str):
    # Imported lazily so that `trainpilot --help` and config tools do not pay for torch/timm.
    if name in ("train", "Run"):
        from trainpilot import api

        return getattr(api, name)
    if name in ("TrainConfig", "load_config"):
        from trainpilot import config

        return getattr(config, name)
    raise AttributeError(f"module 'trainpilot' has no attribute {name!r}")
