"""The New-run form, generated from the config schema, and its validation (the CLI's own messages).

Each field carries its group, default, help text, bounds and allowed values from
:class:`~trainpilot.config.TrainConfig`. A submitted value is read as `--set` reads it
(:func:`~trainpilot.config.parse_value`) and validated by :func:`~trainpilot.config.build_config`,
so the form and the CLI say the same thing about the same mistake.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from trainpilot.config import ConfigError, TrainConfig, build_config, parse_value
from trainpilot.config_reference import type_label

HIDDEN = {"task_type", "timestamp", "data_dir"}  # fixed, automatic, or the form's own dataset field
GROUPS = (("basics", "Basics", "基本设置", ("model_name", "num_epochs", "batch_size", "learning_rate", "image_size",
                                         "use_pretrained", "monitor", "recipe", "device", "time_budget_minutes")),
          ("optimizer", "Optimizer and schedule", "优化器与学习率", ("optimizer", "weight_decay", "lr_scheduler", "beta1",
                                                              "beta2", "momentum", "nesterov", "warmup", "min_lr",
                                                              "lr_", "gradient")),
          ("data", "Data and augmentation", "数据与增强", ("use_augmentation", "advanced", "cutmix", "mixup", "resize",
                                                        "input_aspect", "rotate_to_fit", "sampler", "crop", "color",
                                                        "val_split", "cache", "train_cache", "num_workers",
                                                        "class_weights", "use_class_weights",
                                                        "weight_strategy", "focal_gamma")),
          ("regularisation", "Regularisation and stopping", "正则化与早停", ("dropout", "label_smoothing", "model_ema",
                                                                       "early_stopping", "activation")),
          ("tuning", "Intelligent training", "智能训练", ("intelligent_training.",)),
          ("output", "Output and runtime", "输出与运行", ("",)))


def _group(key: str) -> str:
    for gid, _, _, prefixes in GROUPS:
        if any(key == p or (p and key.startswith(p)) or p == "" for p in prefixes):
            return gid
    return "output"


def _kind(ann: Any) -> tuple[str, list[str]]:
    if get_origin(ann) is Literal:
        return "choice", [str(a) for a in get_args(ann)]
    if get_origin(ann) is list and get_args(ann) and get_origin(get_args(ann)[0]) is Literal:
        return "multi", [str(a) for a in get_args(get_args(ann)[0])]
    args = [a for a in get_args(ann) if a is not type(None)]
    if len(args) == 1 and get_origin(args[0]) is Literal:  # Optional[Literal[...]]
        return "choice", ["", *[str(a) for a in get_args(args[0])]]
    if ann is bool:
        return "bool", []
    if ann in (int, float):
        return ann.__name__, []
    if ann is str or (args and args[0] is str):
        return "str", []
    return "json", []


def _fields(model: type[BaseModel], prefix: str) -> list[dict]:
    out = []
    for name, field in model.model_fields.items():
        key, ann = prefix + name, field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _fields(ann, key + ".")
            continue
        if key in HIDDEN:
            continue
        bounds = {}
        for meta in field.metadata:
            for attr in ("ge", "gt", "le", "lt"):
                if getattr(meta, attr, None) is not None:
                    bounds[attr] = getattr(meta, attr)
        kind, choices = _kind(ann)
        default = field.get_default(call_default_factory=True)
        out.append({"key": key, "kind": kind, "choices": choices, "default": default, "bounds": bounds,
                    "type": type_label(ann), "help": field.description or "", "group": _group(key),
                    "auto": "(auto)" in (field.description or "")})
    return out


def schema_fields() -> list[dict]:
    """Every settable key, in schema order, with what the form needs to show and check it."""
    return _fields(TrainConfig, "")


def groups(lang: str) -> list[dict]:
    fields = schema_fields()
    return [{"id": gid, "title": zh if lang == "zh" else en, "fields": [f for f in fields if f["group"] == gid]}
            for gid, en, zh, _ in GROUPS]


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def read_values(form: dict[str, Any]) -> dict[str, Any]:
    """Form strings -> typed values, as `--set key=value` reads them; only keys that differ from the default
    are kept, so the automatic recipe still chooses the others."""
    by_key = {f["key"]: f for f in schema_fields()}
    out: dict[str, Any] = {}
    for key, raw in form.items():
        f = by_key.get(key)
        if f is None:
            continue
        if f["kind"] == "bool":
            value: Any = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "on", "yes")
        elif f["kind"] == "multi":
            value = raw if isinstance(raw, list) else [v for v in str(raw).split(",") if v]
        elif f["kind"] in ("str", "choice"):
            value = None if raw in ("", None) and f["default"] is None else str(raw)
        else:
            value = parse_value(str(raw)) if isinstance(raw, str) else raw
            if raw == "" and f["default"] is None:
                value = None
        if value != f["default"]:
            out[key] = value
    return out


_KEY = re.compile(r"^config key '([^']+)'")


def validate(values: dict[str, Any], data_dir: str = "") -> dict[str, str]:
    """key -> the CLI's one-line message, for every field that is wrong on its own; then the whole set
    (rules across keys) under the first key it names. Empty when the config is valid."""
    errors: dict[str, str] = {}
    for key, value in values.items():
        try:
            build_config(_nest({key: value}))
        except ConfigError as err:
            errors[key] = str(err)
    if not errors:
        try:
            build_config({**_nest(values), "data_dir": data_dir})
        except ConfigError as err:
            m = _KEY.match(str(err))
            errors[m.group(1) if m else "_form"] = str(err)
    return errors


def as_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Dotted key -> value, JSON-safe, ready for `--set`."""
    return json.loads(json.dumps(values))
