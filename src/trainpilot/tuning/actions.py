"""The action schema: what an advisor may change, and how each proposed change is judged.

Every proposal (from the rule engine or an LLM) passes through :func:`validate_proposal`
before it reaches ``Trainer.apply_changes``. The tunable keys and their bounds are read from
``TrainConfig``'s field metadata (``json_schema_extra={"tunable": ...}`` and ge/gt/le/lt), so
there is no second list to keep in sync; ``IntelligentTrainingConfig.bounds`` may narrow them.
Text from an advisor is data: only the validated changes below can have any effect.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import typing
from dataclasses import asdict, dataclass, field
from typing import Any


from trainpilot.config import ConfigError, IntelligentTrainingConfig, TrainConfig, build_config
from trainpilot.data.weights import compute_class_weights, sampled_counts
from trainpilot.engine.events import AdjustmentStatus as S
from trainpilot.tuning.messages import Msg, recorded
from trainpilot.tuning.proposals import (  # noqa: F401  (re-exported: the schema's public names)
    MAX_REPLY_BYTES, PROPOSAL_JSON_SCHEMA, Proposal, ProposedChange, parse_llm_reply)

MAX_CHANGES = 6            # changes considered per proposal
MAX_EPOCH_FACTOR = 2.0     # num_epochs may at most double per intervention
# class-balance keys: the controller judges them over a longer window; the rules never bundle them with others
IMBALANCE_KEYS = ("sampler", "use_class_weights", "weight_strategy", "class_weights")
# keys that change what the training loss measures: a train loss after such a change is not compared with
# the losses before it (mixup alone doubles a converged model's train loss)
LOSS_KEYS = IMBALANCE_KEYS + ("advanced_augmentation_enabled", "mixup_alpha", "cutmix_prob", "label_smoothing_enabled",
                              "label_smoothing", "dropout_rate", "drop_suspect_labels")


def loss_changed_at(adjustments) -> int:
    """The last epoch at whose end a change still in effect (applied, approved or kept) redefined the training
    loss (LOSS_KEYS); 0 when none. A rolled-back change is not in effect, and its epochs leave the lineage."""
    live = (S.APPLIED, S.APPROVED, S.KEPT)
    return max((int(r.get("approved_at_epoch") or r["epoch"]) for r in adjustments
                if r.get("status") in live and any(c["key"] in LOSS_KEYS for c in r.get("changes") or [])), default=0)


_ALIASES = {"lr": "learning_rate", "epochs": "num_epochs", "wd": "weight_decay", "dropout": "dropout_rate"}


@dataclass(frozen=True)
class Tunable:
    """One key the controller may change: its kind, how it is applied and its bounds."""

    key: str
    kind: str  # float | int | bool | choice | class_weights
    apply: str  # live | restart | extend
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    overridden: bool = False

    def range_text(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.low is None and self.high is None:
            return "any"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"

    def within(self, v: float) -> bool:
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (self.high is not None and (v > self.high or (self.high_open and v == self.high)))

    def with_override(self, pair: list[float] | None) -> Tunable:
        """These bounds narrowed by an ``intelligent_training.bounds`` entry [low, high]."""
        if not pair or len(pair) != 2 or self.kind not in ("float", "int"):
            return self
        lo, hi, lo_open, hi_open = self.low, self.high, self.low_open, self.high_open
        if lo is None or pair[0] > lo:
            lo, lo_open = float(pair[0]), False
        if hi is None or pair[1] < hi:
            hi, hi_open = float(pair[1]), False
        return Tunable(self.key, self.kind, self.apply, lo, hi, lo_open, hi_open, self.choices, True)


def _tunable_from_field(name: str, info: Any) -> Tunable | None:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if not extra.get("tunable"):
        return None
    ann, kw = info.annotation, {}
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        kind, kw["choices"] = "choice", tuple(str(c) for c in typing.get_args(ann))
    elif ann is bool:
        kind = "bool"
    elif ann in (int, float):
        kind = ann.__name__
    else:
        kind = "class_weights"
    for meta in info.metadata:
        for attr, side, is_open in (("ge", "low", False), ("gt", "low", True), ("le", "high", False), ("lt", "high", True)):
            if getattr(meta, attr, None) is not None:
                kw[side], kw[f"{side}_open"] = float(getattr(meta, attr)), is_open
    return Tunable(name, kind, extra["tunable"], **kw)


TUNABLE: dict[str, Tunable] = {
    name: spec for name, info in TrainConfig.model_fields.items()
    if (spec := _tunable_from_field(name, info)) is not None
}


def tunable_spec(key: str, it_cfg: IntelligentTrainingConfig | None = None) -> Tunable:
    """The bounds that apply to ``key`` in this run (schema bounds narrowed by ``it_cfg.bounds``)."""
    spec = TUNABLE[key]
    return spec.with_override((it_cfg.bounds if it_cfg else {}).get(key))


def change_direction(old: Any, new: Any) -> str:
    """``up``/``down`` for numbers, ``on``/``off`` for switches, else ``to <value>``; keys the
    ``reverted`` set together with the change's key."""
    if isinstance(new, bool) or isinstance(old, bool):
        return "on" if new else "off"
    if isinstance(new, (int, float)) and isinstance(old, (int, float)):
        return "up" if new > old else "down"
    return "to " + json.dumps(new, ensure_ascii=False, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------------
# validation

class _Reject(Exception):
    """A rejected change: its reason as a message (``reject.<key>``), recorded in English and shown in either
    language."""

    def __init__(self, message: str, /, **args: Any) -> None:
        self.msg = Msg(f"reject.{message}", args)
        super().__init__(self.msg.render("en"))


def _rejection(key: str, value: Any, why: Msg | str) -> dict:
    """One entry of ``Validated.rejected``: the reason in English, and its message key where it has one."""
    return {"key": key, "value": value, **recorded(why)}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list, str)) else str(v)


def _number(spec: Tunable, value: Any) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise _Reject("number", got=_fmt(value)) if value is not None else _Reject("number_none")
    try:
        v = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _Reject("text", got=repr(value)) from None
    except OverflowError:
        v = math.inf
    if not math.isfinite(v):
        raise _Reject("nonfinite", v=str(v))
    if spec.kind == "int":
        if v != int(v):
            raise _Reject("whole", v=f"{v:g}")
        v = int(v)
    if not spec.within(v):
        src = " (intelligent_training.bounds)" if spec.overridden else ""
        raise _Reject("range", v=f"{v:g}", range=spec.range_text(), src=src)
    return v


def coerce_value(spec: Tunable, value: Any, class_names: list[str]) -> Any:
    """``value`` as the key's type, within its bounds, or ``_Reject`` with the reason."""
    if spec.kind in ("float", "int"):
        return _number(spec, value)
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in ("true", "yes", "on", "1", "enabled"):
            return True
        if word in ("false", "no", "off", "0", "disabled"):
            return False
        raise _Reject("bool", got=_fmt(value))
    if spec.kind == "choice":
        if isinstance(value, str):
            hit = [c for c in spec.choices if c.lower() == value.strip().lower()]
            if hit:
                return hit[0]
        raise _Reject("choice", got=_fmt(value), choices=", ".join(spec.choices))
    if not isinstance(value, dict):
        raise _Reject("weights_dict", got=_fmt(value))
    missing = [c for c in class_names if c not in value]
    extra = [str(c) for c in value if c not in class_names]
    if missing or extra or not class_names:
        raise _Reject("weights_names", names=_fmt(class_names), missing=_fmt(missing), unknown=_fmt(extra))
    out = {}
    for name in class_names:
        try:
            out[name] = _number(Tunable("class_weights", "float", "live", 0.0, None, True), value[name])
        except _Reject:
            raise _Reject("weight_value", name=repr(name), got=_fmt(value[name])) from None
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _suggest(key: str) -> str | None:
    """The config key a mistyped or aliased ``key`` most likely means."""
    names = list(TUNABLE) + [k for k in TrainConfig.model_fields if k not in TUNABLE]
    return _ALIASES.get(key.lower()) or next(iter(difflib.get_close_matches(key, names, n=1, cutoff=0.6)), None)


@dataclass
class Validated:
    """The outcome of :func:`validate_proposal`.

    ``changes``: ``{"key","old","new","reason","apply","source"}`` in the order to apply, advisor
    changes first, then consistency ``auto_fix`` changes; ``rejected``: ``{"key","value","reason"}``;
    ``unchanged``: proposals that equal the current value (dropped, recorded here);
    ``notes``: remarks on changes that were accepted as they are.
    """

    changes: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    new_config: TrainConfig | None = None
    unchanged: list[dict] = field(default_factory=list)
    notes: list[Msg] = field(default_factory=list)

    @property
    def auto_fixes(self) -> list[dict]:
        return [c for c in self.changes if c["source"] == "auto_fix"]

    @property
    def updates(self) -> dict[str, Any]:
        """``{key: new}`` for ``Trainer.apply_changes``."""
        return {c["key"]: c["new"] for c in self.changes}

    @property
    def needs_restart(self) -> bool:
        return any(c["apply"] == "restart" for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["new_config"] = self.new_config.to_dict() if self.new_config else None
        return out


def _record(key: str, old: Any, new: Any, reason: str | Msg, source: str) -> dict:
    """One accepted change; an auto-fix's reason is a message (recorded in English, with its key)."""
    apply = "restart" if TUNABLE[key].apply == "restart" else "live"
    return {"key": key, "old": old, "new": new, **recorded(reason), "apply": apply, "source": source}


def _check_one(ch: ProposedChange, cfg: TrainConfig, it_cfg: IntelligentTrainingConfig,
               class_names: list[str], reverted: set) -> Any:
    """The coerced new value, or ``_Reject``."""
    key = ch.key
    if key not in TrainConfig.model_fields:
        hint = _suggest(key)
        raise _Reject("unknown_hint", key=key, hint=hint) if hint else _Reject("unknown", key=key)
    if key not in TUNABLE:
        raise _Reject("fixed", key=key)
    spec, old = tunable_spec(key, it_cfg), getattr(cfg, key)
    new = coerce_value(spec, ch.value, class_names)
    if key == "learning_rate" and not _same(new, old):
        f = it_cfg.lr_max_factor
        lo, hi = old / f, old * f
        if not lo * (1 - 1e-9) <= new <= hi * (1 + 1e-9):
            raise _Reject("lr_factor", old=f"{old:g}", new=f"{new:g}", ratio=f"{max(new / old, old / new):.3g}",
                          f=f"{f:g}", lo=f"{lo:g}", hi=f"{hi:g}")
    if key == "num_epochs" and not _same(new, old):
        if new < old:
            raise _Reject("epochs_down", old=old, new=new)
        if new > old * MAX_EPOCH_FACTOR:
            raise _Reject("epochs_factor", old=old, new=new, f=f"{MAX_EPOCH_FACTOR:g}", most=int(old * MAX_EPOCH_FACTOR))
    if key == "use_pretrained" and new != old:
        from trainpilot.models import offline_weights

        if not new:
            raise _Reject("pretrained_off")
        if cfg.pretrained_path:
            raise _Reject("pretrained_path", path=cfg.pretrained_path)
        if offline_weights(cfg.model_name) is None:
            raise _Reject("no_weights", model=cfg.model_name)
    if not _same(new, old) and ({key, (key, change_direction(old, new))} & set(reverted)):
        raise _Reject("reverted", key=key, dir=change_direction(old, new))
    return new


_ENABLE_INTENT = re.compile(r"enabl|turn on|switch on|启用|开启|打开", re.IGNORECASE)


def _consistency(acc: dict[str, dict], cfg: TrainConfig, train_counts: list[int],
                 class_names: list[str]) -> tuple[list[dict], dict[str, Msg], list[str]]:
    """Auto-fixes, rejections (key -> reason) and notes implied by the accepted changes ``acc``."""
    cur = cfg.to_dict()
    fixes: list[dict] = []
    rejects: dict[str, Msg | str] = {}
    notes: list[Msg] = []
    fixes_map: dict[str, Any] = {}

    def val(key: str) -> Any:
        return fixes_map[key] if key in fixes_map else acc[key]["new"] if key in acc else cur[key]

    def fix(key: str, new: Any, reason: Msg) -> None:
        if not _same(new, cur[key]) and key not in acc:
            fixes_map[key] = new
            fixes.append(_record(key, cur[key], new, reason, "auto_fix"))

    if "class_weights" in acc:
        if val("weight_strategy") != "custom":
            fix("weight_strategy", "custom", Msg("fix.custom_strategy"))
        if not val("use_class_weights"):
            fix("use_class_weights", True, Msg("fix.weights_on"))
    weights_touched = {"use_class_weights", "weight_strategy"} & set(acc)
    resampled = "sampler" in acc and val("weight_strategy") not in ("custom", "none")  # the same weights, redrawn
    if (weights_touched or resampled) and val("use_class_weights"):
        strategy, given = val("weight_strategy"), val("class_weights") or {}
        if strategy == "custom" and any(c not in given for c in class_names):
            for k in weights_touched:
                rejects[k] = Msg("reject.custom_weights")
        elif "class_weights" not in acc and class_names and len(train_counts) == len(class_names):
            sampler = val("sampler")
            weights = compute_class_weights(sampled_counts(list(train_counts), sampler), list(class_names), strategy, given)
            counts = ", ".join(f"{c}={n}" for c, n in zip(class_names, train_counts))
            fix("class_weights", weights, Msg("fix.weights" if sampler == "shuffle" else "fix.weights_drawn",
                                              {"counts": counts, "sampler": sampler, "strategy": strategy}))
        elif "class_weights" not in acc:
            notes.append(Msg("note.weights_by_trainer"))
    acc_keys = {"gradient_accumulation_steps", "gradient_accumulation_enabled"} & set(acc)
    if acc_keys:
        steps, enabled = val("gradient_accumulation_steps"), val("gradient_accumulation_enabled")
        if enabled and steps == 1 and "gradient_accumulation_enabled" in acc and "gradient_accumulation_steps" not in acc:
            rejects["gradient_accumulation_enabled"] = Msg("reject.accumulation")
        elif enabled and steps == 1:
            fix("gradient_accumulation_enabled", False, Msg("fix.accumulation_off"))
        elif steps > 1 and not enabled and "gradient_accumulation_steps" in acc:
            fix("gradient_accumulation_enabled", True, Msg("fix.accumulation_on", {"steps": steps}))
    if "label_smoothing" in acc and val("label_smoothing") > 0 and not val("label_smoothing_enabled"):
        fix("label_smoothing_enabled", True, Msg("fix.smoothing_on", {"v": f"{val('label_smoothing'):g}"}))
    if acc.get("label_smoothing_enabled", {}).get("new") and val("label_smoothing") == 0:
        fix("label_smoothing", 0.1, Msg("fix.smoothing_amount"))
    for k in ("mixup_alpha", "cutmix_prob"):
        if k in acc and not val("advanced_augmentation_enabled"):
            if _ENABLE_INTENT.search(acc[k]["reason"] or ""):
                fix("advanced_augmentation_enabled", True, Msg("fix.mixup_on", {"key": k}))
            else:
                notes.append(Msg("note.mixup_inactive", {"key": k}))
    if val("advanced_augmentation_enabled") and val("batch_size") % 2 and (
            {"advanced_augmentation_enabled", "batch_size"} & (set(acc) | set(fixes_map))):
        reason = Msg("reject.odd_batch", {"bs": val("batch_size")})
        for k in ({"advanced_augmentation_enabled", "batch_size", "mixup_alpha", "cutmix_prob"} & set(acc)):
            rejects[k] = reason
    if acc.get("lr_scheduler", {}).get("new") == "OneCycleLR" and cfg.warmup_enabled:
        notes.append(Msg("note.onecycle_warmup"))
    if "gradient_clipping_value" in acc and not val("gradient_clipping"):
        fix("gradient_clipping", True, Msg("fix.clipping_on"))
    return fixes, rejects, notes


_ERR_KEY = re.compile(r"config key '([^'.]+)")


def validate_proposal(proposal: Proposal | dict, cfg: TrainConfig, it_cfg: IntelligentTrainingConfig | None = None,
                      train_counts: list[int] | None = None, class_names: list[str] | None = None,
                      reverted: set | None = None) -> Validated:
    """Judge every proposed change; return what may be applied and why the rest was rejected.

    ``reverted`` holds ``(key, change_direction(old, new))`` pairs (or bare keys) of changes rolled
    back earlier in this run. Never raises for anything inside ``proposal``.
    """
    it_cfg = it_cfg or cfg.intelligent_training
    train_counts, class_names, reverted = list(train_counts or []), list(class_names or []), set(reverted or ())
    if isinstance(proposal, dict):
        proposal = Proposal.model_validate(proposal)
    out = Validated()
    acc: dict[str, dict] = {}
    for i, ch in enumerate(proposal.changes):
        key = ch.key.strip()
        ch = ProposedChange(key=key, value=ch.value, reason=ch.reason)
        if i >= MAX_CHANGES:
            out.rejected.append(_rejection(key, ch.value, Msg("reject.too_many", {"n": MAX_CHANGES})))
            continue
        if key in acc or any(u["key"] == key for u in out.unchanged):
            out.rejected.append(_rejection(key, ch.value, Msg("reject.duplicate", {"key": key})))
            continue
        try:
            new = _check_one(ch, cfg, it_cfg, class_names, reverted)
        except _Reject as why:
            out.rejected.append(_rejection(key, ch.value, why.msg))
            continue
        if _same(new, getattr(cfg, key)):
            out.unchanged.append({"key": key, "value": new, "reason": "already the current value"})
        else:
            acc[key] = _record(key, getattr(cfg, key), new, ch.reason, "advisor")
    base = cfg.to_dict()
    for _ in range(MAX_CHANGES + 2):
        fixes, rejects, notes = _consistency(acc, cfg, train_counts, class_names)
        if not rejects:
            try:
                out.new_config = build_config({**base, **{c["key"]: c["new"] for c in [*acc.values(), *fixes]}})
            except ConfigError as err:
                m = _ERR_KEY.search(str(err))
                bad = m.group(1) if m and m.group(1) in acc else None
                rejects = {bad: str(err)} if bad else {k: str(err) for k in acc}
        for k, reason in rejects.items():
            out.rejected.append(_rejection(k, acc.pop(k)["new"], reason))
        if out.new_config is not None:
            out.changes, out.notes = [*acc.values(), *fixes], notes
            return out
    out.changes, out.new_config = [], cfg  # the changes could not be made consistent: apply none
    return out
