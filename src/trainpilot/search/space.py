"""The search space of a study: config keys with ranges or choices, checked against the config schema.

A space is a mapping ``key -> Param``. Numeric keys take ``low``/``high`` (``log`` for a log scale,
``step`` for a grid); any key may take ``choices`` instead; a boolean key is searched over
``[false, true]`` when given with no range. Every bound and choice is validated by the same schema
(and the same one-line errors) as a config file, so a space cannot reach a value a run would refuse.

The default space is the one most studies want: lr and weight decay on a log scale, label smoothing,
Mixup/CutMix on or off, dropout, batch size, the input size near the images' own, and the model from
a short list. Keys the user fixed (``--set``, ``--config``) are left out of it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from trainpilot.config import ConfigError, TrainConfig, _suggest, all_keys, build_config, read_config_file
from trainpilot.data.profile import DataProfile
from trainpilot.recipe import LETTERBOX_SHARE, round32

MODELS = ["tf_efficientnet_lite0", "mobilenetv3_small_100", "resnet18"]


class Param(BaseModel):
    """One searched key: a range (``low``/``high``, optional ``log``/``step``) or a list of ``choices``."""

    model_config = ConfigDict(extra="forbid")
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> "Param":
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices is empty")
        elif self.low is None or self.high is None:
            raise ValueError("needs low and high, or choices")
        elif not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        elif self.log and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        elif self.log and self.step is not None:
            raise ValueError("give log or step, not both")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_defaults=True)


def _field(key: str):
    model: type[BaseModel] = TrainConfig
    *parents, leaf = key.split(".")
    for part in parents:
        model = model.model_fields[part].annotation
    return model.model_fields[leaf]


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def _check_value(key: str, value: Any, where: str) -> None:
    try:
        build_config(_nested(key, value))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    if key == "model_name":
        from trainpilot.models import resolve_model_name

        try:
            resolve_model_name(str(value))
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None


def check_param(key: str, param: Param, where: str = "search space") -> Param:
    """``param`` validated against the schema field of ``key``: type, bounds and allowed values."""
    where = f"{where} key '{key}'"
    if key not in all_keys():
        raise ConfigError(f"{where}: unknown config key{_suggest(key)}")
    ann = _field(key).annotation
    if param.choices is None:
        if ann is bool:
            param = Param(choices=[False, True])
        elif ann not in (int, float):
            allowed = f" (one of: {', '.join(map(str, get_args(ann)))})" if get_origin(ann) is not None else ""
            raise ConfigError(f"{where}: not a number; give choices{allowed}")
        else:
            if ann is int and not (float(param.low).is_integer() and float(param.high).is_integer()):
                raise ConfigError(f"{where}: an integer key needs whole-number low and high")
            for bound in (param.low, param.high):
                _check_value(key, int(bound) if ann is int else float(bound), where)
            return param
    for value in param.choices:
        if not isinstance(value, (bool, int, float, str)):
            raise ConfigError(f"{where}: choice {value!r} is not a number, string or boolean")
        _check_value(key, value, where)
    return param


def suggest(trial, space: dict[str, Param]) -> dict[str, Any]:
    """Ask ``trial`` for one value of every key of ``space``; returns ``{key: value}``."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.choices is not None:
            out[key] = trial.suggest_categorical(key, p.choices)
        elif _field(key).annotation is int:
            out[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            # 4 significant digits reach the run (and best_config.yaml): 0.001253, not 0.0012520653814999472
            out[key] = float(f"{trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step):.4g}")
    return out


def contains(space: dict[str, Param], params: dict[str, Any]) -> dict[str, Any]:
    """The part of ``params`` that lies inside ``space`` (for warm starts and advisor proposals)."""
    out = {}
    for key, value in params.items():
        p = space.get(key)
        if p is None:
            continue
        if p.choices is not None:
            if value in p.choices:
                out[key] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and p.low <= value <= p.high:
            out[key] = int(value) if _field(key).annotation is int else float(value)
    return out


def default_space(profile: DataProfile, fixed: set[str]) -> dict[str, Param]:
    """The default search space for this data, without the keys in ``fixed``."""
    if profile.elongated_share >= LETTERBOX_SHARE:  # letterboxed into an input of their shape: the long side
        side, top = round32(profile.median_long_side), round32(224 * math.sqrt(min(3.0, profile.median_aspect)))
    else:
        side, top = round32(math.sqrt(profile.median_width * profile.median_height)), 224
    sizes = sorted({min(top, max(64, s)) for s in (side - 32, side, side + 32)})
    space = {
        "learning_rate": Param(low=1e-4, high=1e-2, log=True),
        "weight_decay": Param(low=1e-5, high=0.3, log=True),
        "label_smoothing": Param(low=0.0, high=0.2),
        "advanced_augmentation_enabled": Param(choices=[False, True]),
        "dropout_rate": Param(low=0.0, high=0.5),
        "batch_size": Param(choices=[16, 32, 64]),
        "image_size": Param(choices=sizes),
        "model_name": Param(choices=MODELS),
    }
    return {k: check_param(k, p) for k, p in space.items() if k not in fixed}


def load_space(path: str | Path, fixed: set[str]) -> dict[str, Param]:
    """A YAML/JSON space file: ``key: {low, high, log, step}`` or ``key: {choices: [...]}`` (or a bare list)."""
    data = read_config_file(path)
    space: dict[str, Param] = {}
    for key, raw in data.items():
        where = f"space file '{path}' key '{key}'"
        if key in fixed:
            raise ConfigError(f"{where}: the key is fixed by --set/--config for every trial; drop it from one of them")
        try:
            param = Param.model_validate({"choices": raw} if isinstance(raw, list) else raw)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{where}: {loc + ': ' if loc else ''}{msg}") from None
        space[key] = check_param(key, param, f"space file '{path}'")
    if not space:
        raise ConfigError(f"space file '{path}' names no keys; give at least one, e.g. learning_rate: {{low: 1e-4, high: 1e-2, log: true}}")
    return space


def space_to_dict(space: dict[str, Param]) -> dict[str, dict]:
    return {k: p.to_dict() for k, p in space.items()}


def space_from_dict(data: dict[str, dict]) -> dict[str, Param]:
    return {k: Param.model_validate(v) for k, v in data.items()}
