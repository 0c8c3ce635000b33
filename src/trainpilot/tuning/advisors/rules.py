"""The rule engine: the standard remedy for each diagnosed state, deterministic and offline.

:data:`REMEDIES` is the table ``state -> remedies in order of preference`` and :data:`QUOTA` how many
of them one analysis may take. States are treated most severe first. A remedy that would repeat a
change rolled back earlier in this run (same key, same direction), or that changes nothing, is
skipped and the next one is taken instead; an imbalance remedy that was rolled back comes back once
the minority class has stayed at recall 0 for as long again (:func:`blocked_changes`). A remedy with no
changes is a note: why the state gets nothing now (it lands under "Skipped"). The advisor reads the
diagnosis it is given and never diagnoses again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

from trainpilot.config import TrainConfig
from trainpilot.models import offline_weights
from trainpilot.tuning.actions import (IMBALANCE_KEYS, MAX_CHANGES, Proposal, ProposedChange, change_direction,
                                       tunable_spec)
from trainpilot.tuning.features import FLAT_REL, IMBALANCED, Features, finite, typical_lr
from trainpilot.tuning.messages import say, state_label

from .base import Advisor, AdvisorContext

QUOTA = {"diverging": 2, "underfitting": 1, "overfitting": 3, "imbalance": 1, "majority": 1, "plateau": 1, "unstable": 2,
         "noisy_labels": 1, "weak_class": 1}
# Schedules that keep lowering the lr by themselves (no plateau cut needed), and schedules that cut it
# early and hard (a starved run is better off on a cosine); ExponentialLR is both.
ANNEALING = ("CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau", "ExponentialLR")
STEP_DECAY = ("StepLR", "MultiStepLR", "ExponentialLR")
REVERTED_STATUSES = ("reverted", "rolled_back")
# Above this count ratio, class weights use log_inverse: balanced weights (count ratio : 1) let a few
# minority images dominate each batch's gradient and over-predict the minority class.
GENTLE_WEIGHTS_ABOVE = 8.0
# Epochs after a reverted lr cut before the run's fall back to chance may bring the cut back.
LR_CUT_RETRY_AFTER = 2

Remedy = tuple[list[tuple[str, Any]], str, dict]  # (changes, reason message key, its arguments)


def _show(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else json.dumps(v, ensure_ascii=False)


def _r3(x: float) -> float:
    return float(f"{x:.3g}")


def reverted_changes(past_interventions: list[dict]) -> dict[tuple[str, str], int]:
    """``(key, direction)`` of every change in a reverted earlier intervention -> the epoch of its last revert."""
    out: dict[tuple[str, str], int] = {}
    for rec in past_interventions or []:
        if not isinstance(rec, dict) or str(rec.get("status", "")).lower() not in REVERTED_STATUSES:
            continue
        at = int(((rec.get("outcome") or {}).get("evaluated_at_epoch")) or rec.get("epoch") or 0)
        for c in rec.get("changes") or []:
            if isinstance(c, dict) and "key" in c:
                key = (c["key"], change_direction(c.get("old"), c.get("new")))
                out[key] = max(out.get(key, 0), at)
    return out


def blocked_changes(past_interventions: list[dict], features: Features | None,
                    imbalance_window: int) -> dict[tuple[str, str], int]:
    """The reverted changes that may not be proposed again now.

    A class-imbalance remedy is judged while minority recall has only begun to move, so its revert is
    weak evidence: it comes back once the minority class has had recall 0 for ``imbalance_window``
    epochs, and for every epoch since that revert (the evidence grew). An lr cut is judged on the epoch
    after it, so its revert is weak evidence too when the run then falls back to chance: it comes back
    when, ``LR_CUT_RETRY_AFTER`` epochs or more after a revert at a known epoch, validation is near
    chance at an lr read as too high. Any other revert is final.
    """
    out = reverted_changes(past_interventions)
    if features is None or features.epochs == 0:
        return out
    f, zero, now = features, features.minority_zero_epochs, features.epoch

    def due_again(key: tuple[str, str], at: int) -> bool:
        if key[0] in IMBALANCE_KEYS:
            return now - at >= imbalance_window and zero >= max(imbalance_window, now - at)
        return (key == ("learning_rate", "down") and 0 < at <= now - LR_CUT_RETRY_AFTER
                and f.near_chance and f.lr_verdict == "too_high")

    return {k: at for k, at in out.items() if not due_again(k, at)}


@dataclass
class _Ctx:
    cfg: TrainConfig
    f: Features
    ctx: AdvisorContext

    def lr(self, factor: float) -> float:
        m = self.ctx.it_cfg.lr_max_factor
        return _r3(self.cfg.learning_rate * min(max(factor, 1.0 / m), m))

    def clamp(self, key: str, value: float) -> float:
        spec = tunable_spec(key, self.ctx.it_cfg)
        if spec.high is not None and value > spec.high:
            value = spec.high if not spec.high_open else spec.high * 0.99
        return value

    @property
    def flat_loss(self) -> bool:
        """The train loss has stalled outright (not merely slowed down)."""
        return math.isfinite(self.f.train_loss_trend) and abs(self.f.train_loss_trend) < FLAT_REL / 10

    @cached_property
    def withheld_raise(self) -> tuple[str, dict[str, Any]] | None:
        """Why a slow (not flat) loss earns no lr raise here, as a message key and its arguments; None if it does.
        Right after landing an lr from far too high, a slow loss is no proof the cut went too deep; at the top
        of the usual range, a falling loss is no reason to leave it."""
        if self.flat_loss:
            return None
        if self.recent_lr_cut_from_above is not None:
            return "txt.recent_cut", {"e": self.recent_lr_cut_from_above}
        hi = typical_lr(self.cfg)[1]
        if self.cfg.learning_rate >= hi * (1 - 1e-9):
            return "txt.range_top", {"lr": self.cfg.learning_rate, "hi": hi}
        return None

    @cached_property
    def recent_lr_cut_from_above(self) -> int | None:
        """The epoch of a kept/pending lr cut from above the usual range, within the last two windows."""
        hi, now = typical_lr(self.cfg)[1], self.f.epoch
        for rec in reversed(self.ctx.past_interventions or []):
            if str(rec.get("status")) not in ("applied", "approved", "kept"):
                continue
            for c in rec.get("changes") or []:
                if (c.get("key") == "learning_rate" and isinstance(c.get("old"), (int, float)) and c["old"] > hi
                        and c.get("new", math.inf) < c["old"] and now - int(rec.get("epoch", 0)) <= 2 * self.f.window + 2):
                    return int(rec.get("epoch", 0))
        return None


def _clip(r: _Ctx) -> Remedy:
    v = min(r.cfg.gradient_clipping_value, 1.0)
    return [("gradient_clipping", True), ("gradient_clipping_value", v)], "why.clip_on", {"v": v}


def _accum(r: _Ctx) -> Remedy:
    steps = max(2, r.cfg.accumulation_steps * 2)
    return [("gradient_accumulation_enabled", True), ("gradient_accumulation_steps", steps)], "why.accum_up", {"s": steps}


def _diverging(r: _Ctx) -> list[Remedy]:
    return [([("learning_rate", r.lr(0.1))], "why.lr_down_div", {"f": 0.1}), _clip(r), _accum(r)]


def _unstable(r: _Ctx) -> list[Remedy]:
    return [([("learning_rate", r.lr(0.5))], "why.lr_unstable", {"f": 0.5}), _clip(r), _accum(r)]


def _plateau(r: _Ctx) -> list[Remedy]:
    if r.cfg.lr_scheduler in ANNEALING:
        return []  # the schedule is already lowering the lr (see advise)
    return [([("learning_rate", r.lr(0.3))], "why.lr_plateau", {"f": 0.3})]


def _lr_down(r: _Ctx, why: str) -> list[Remedy]:
    """Cut a too-high lr: never below the usual range, and from above it land no lower than half its top."""
    cfg, f = r.cfg, r.f
    low, high = typical_lr(cfg)
    sharp = f.train_loss_trend > 0.1 or f.grad_norm_max > 100 or cfg.learning_rate > high
    if cfg.learning_rate <= low:
        return []
    floor = high / 2 if cfg.learning_rate > high else low
    new = max(r.lr(0.1 if sharp else 0.3), floor)
    return [([("learning_rate", new)], why, {"f": _r3(new / cfg.learning_rate)})]


def _underfitting(r: _Ctx) -> list[Remedy]:
    cfg, f = r.cfg, r.f
    if f.lr_verdict == "too_high":
        return _lr_down(r, "why.lr_down_high") + [_clip(r)]
    flat = r.flat_loss
    factor = 10.0 if flat or f.lr_prior == "low" else 3.0
    # a slow (not a flat) loss is no reason to leave the usual range: a raise lands at most at its top
    new = r.lr(factor) if flat else min(r.lr(factor), typical_lr(cfg)[1])
    raise_lr: list[Remedy] = [([("learning_rate", new)], "why.lr_up", {"f": _r3(new / cfg.learning_rate)})]
    if r.withheld_raise:
        raise_lr = []
    structural: list[Remedy] = []
    steps = int(f.steps_per_epoch) if math.isfinite(f.steps_per_epoch) else 0
    if cfg.gradient_accumulation_enabled and cfg.gradient_accumulation_steps > 1 and 0 < steps < 50:
        structural.append(([("gradient_accumulation_enabled", False), ("gradient_accumulation_steps", 1)],
                           "why.accum_off", {"s": steps}))
    if cfg.lr_scheduler in STEP_DECAY:
        structural.append(([("lr_scheduler", "CosineAnnealingLR")], "why.cosine", {"old": cfg.lr_scheduler}))
    if f.lr_verdict == "too_low":
        return raise_lr + structural
    if not raise_lr:
        return []
    return raise_lr + [  # the lr first; the regularizers only when that change was reverted
        ([("dropout_rate", _r3(cfg.dropout_rate / 2) if cfg.dropout_rate > 0.05 else 0.0)], "why.less_dropout", {}),
        ([("weight_decay", _r3(cfg.weight_decay / 3))] if cfg.weight_decay > 1e-4 else [], "why.less_wd", {}),
        ([("advanced_augmentation_enabled", False)], "why.no_mixup", {})]


def _overfitting(r: _Ctx) -> list[Remedy]:
    cfg = r.cfg
    wd = r.clamp("weight_decay", min(0.5, _r3(cfg.weight_decay * 3) if cfg.weight_decay > 0 else 1e-4))
    smooth = [("label_smoothing_enabled", True)] + ([("label_smoothing", 0.1)] if cfg.label_smoothing == 0 else [])
    mix = [("advanced_augmentation_enabled", True)] if cfg.batch_size % 2 == 0 else []
    drop = r.clamp("dropout_rate", 0.2 if cfg.dropout_rate < 0.2 else min(0.5, _r3(cfg.dropout_rate + 0.1)))
    return [([("weight_decay", wd)], "why.more_wd", {"f": 3}), (smooth, "why.smoothing", {}), (mix, "why.mixup", {}),
            ([("use_augmentation", True)], "why.augment", {}), ([("dropout_rate", drop)], "why.dropout", {"v": drop})]


def _class_weights(r: _Ctx) -> list[Remedy]:
    """Loss weights for the minority classes, on the imbalance the sampler leaves: gentle (log_inverse)
    first when that is beyond 8:1 or a sampler already rebalances, then escalated to balanced. After a
    rebalancing sampler, each step waits for the minority class to stay at recall 0 for a whole window.
    Where it waits, the remedy is a note (no changes) that says why, so a report never repeats a bare
    "imbalance: no changes"."""
    cfg, f = r.cfg, r.f
    ratio, recall = f.sampled_ratio, f.minority_recall if math.isfinite(f.minority_recall) else f.min_class_recall
    if not recall < 0.5:
        return []
    if ratio < IMBALANCED:
        return [([], "wait.drawn_even", {"r": ratio, "s": cfg.sampler})]  # weights would all be about 1.0
    if f.majority_recall < f.mean_class_recall:
        # the model already gives up the majority class more than the rest: more weight would trade more of it
        return [([], "wait.majority_low", {"a": f.majority_recall, "m": f.mean_class_recall})]
    window = r.ctx.it_cfg.imbalance_evaluation_window
    if cfg.sampler != "shuffle" and f.minority_zero_epochs < window:
        # a sampler already rebalances what the loss sees; weights on top trade majority-class precision for
        # minority recall twice over. Add them only once the minority class has stayed unfound for as long as a
        # remedy is given to work, rather than for a recall that is merely still low.
        return [([], "wait.sampler", {"s": cfg.sampler, "name": f.minority_class or f.worst_class, "w": window,
                                      "n": f.minority_zero_epochs})]
    if cfg.use_class_weights and cfg.weight_strategy == "log_inverse":
        # full weights only when the gentle ones never lifted the minority recall over a whole window: one low
        # epoch of a few-image class after good ones is noise, and at this ratio full weights over-predict it
        recent = finite(f.minority_recalls[-window:])
        if len(recent) < window or max(recent) >= 0.5:
            return [([], "wait.gentle_weights", {"name": f.minority_class or f.worst_class, "w": len(recent),
                                                 "peak": max(recent, default=recall)})]
        return [([("weight_strategy", "balanced")], "why.weights_full", {"r": ratio, "rec": recall})]
    if cfg.use_class_weights and cfg.weight_strategy in ("balanced", "inverse"):
        return [([], "wait.full_weights", {"s": cfg.weight_strategy})]  # never back down to gentler ones
    units: list[tuple[str, Any]] = [("use_class_weights", True)]
    if (ratio > GENTLE_WEIGHTS_ABOVE or cfg.sampler != "shuffle") and cfg.weight_strategy in ("balanced", "inverse", "none"):
        # balanced weights would be ratio:1, so a batch's few minority images would dominate its gradient;
        # after a sampler, full weights would turn the whole imbalance around on the majority class
        units.append(("weight_strategy", "log_inverse"))
        return [(units, "why.weights_gentle", {"w": 1 + math.log(ratio), "r": ratio})]
    if cfg.weight_strategy == "none" or (cfg.weight_strategy == "custom" and not cfg.class_weights):
        units.append(("weight_strategy", "balanced"))
    return [(units, "why.weights", {"s": dict(units).get("weight_strategy", cfg.weight_strategy)})]


def _imbalance(r: _Ctx) -> list[Remedy]:
    if r.ctx.diagnosis.state("majority") is not None:
        return []  # the collapse's remedies escalate one step at a time; weights are one of those steps
    if r.cfg.sampler == "balanced":
        return [([], "wait.balanced_sampler", {})]  # loss weights on top would count the imbalance twice
    return _class_weights(r)


def _majority(r: _Ctx) -> list[Remedy]:
    """Escalate, one step per analysis: balanced sampling (or, where that was reverted, balanced loss
    weights), ImageNet weights for a model trained from scratch, then the lr."""
    cfg, f = r.cfg, r.f
    out: list[Remedy] = [([("sampler", "balanced")], "why.sampler", {"s": "balanced"})]
    if cfg.sampler != "balanced":  # after a balanced sampler, balanced weights would all be 1.0
        out.append(([("use_class_weights", True), ("weight_strategy", "balanced")], "why.weights", {"s": "balanced"}))
    if not cfg.use_pretrained and not cfg.pretrained_path and (source := offline_weights(cfg.model_name)):
        out.append(([("use_pretrained", True)], "why.pretrained", {"src": source}))
    if f.lr_verdict == "too_high":
        out += _lr_down(r, "why.lr_majority_down")
    else:
        out.append(([("learning_rate", r.lr(3.0))], "why.lr_majority_up", {"f": 3.0}))
    return out


def _noisy_labels(r: _Ctx) -> list[Remedy]:
    """Train without the images whose label the model contradicts (confident learning); once that is on, a
    note: the fix is the labels. Leaving the largest-loss share of each batch out of the loss (the
    small-loss rule) cost test macro-F1 in the pathology suite, and raising the lr for the low train
    accuracy would chase the wrong labels."""
    share = {"share": r.f.label_disagreement}
    return [([("drop_suspect_labels", True)], "why.drop_suspects", share),
            ([], "wait.noisy_labels" if r.cfg.suspect_labels else "wait.noisy_labels_off", share)]


def _weak_class(r: _Ctx) -> list[Remedy]:
    """A note, not a change: on balanced counts no class-balance key reaches a class the model does not learn."""
    name, other = (json.dumps(x, ensure_ascii=False) for x in (r.f.worst_class, r.f.worst_taken_for))
    if r.f.worst_taken_for is None:
        return [([], "wait.weak_class_plain", {"name": name})]
    return [([], "wait.weak_class", {"name": name, "other": other})]


REMEDIES: dict[str, Callable[[_Ctx], list[Remedy]]] = {
    "diverging": _diverging, "underfitting": _underfitting, "majority": _majority, "overfitting": _overfitting,
    "plateau": _plateau, "unstable": _unstable, "imbalance": _imbalance, "noisy_labels": _noisy_labels,
    "weak_class": _weak_class,
}


class RuleAdvisor(Advisor):
    """Maps each diagnosed state to its standard remedies, with the evidence as the reason."""

    name = "rules"

    def advise(self, context: AdvisorContext) -> Proposal:
        ctx, lang = context, "zh" if context.language == "zh" else "en"
        o, c, col, sep = ("（", "）", "：", "；") if lang == "zh" else (" (", ")", ": ", "; ")
        diag = ctx.diagnosis.in_language(lang)
        r = _Ctx(ctx.cfg, diag.features, ctx)
        blocked = blocked_changes(ctx.past_interventions, diag.features, ctx.it_cfg.imbalance_evaluation_window)
        retried = {k: at for k, at in reverted_changes(ctx.past_interventions).items() if k not in blocked}
        chosen: dict[str, ProposedChange] = {}
        skipped: list[str] = []
        exhausted, lines = False, []
        for st in diag.states:
            if st.state == "healthy":
                continue
            label = state_label(st.state, lang)
            if st.state == "plateau" and ctx.cfg.lr_scheduler in ANNEALING:
                skipped.append(say("txt.annealing", lang, label=label, s=ctx.cfg.lr_scheduler))
            if st.state == "underfitting" and diag.features.lr_verdict != "too_high" and r.withheld_raise:
                key, args = r.withheld_raise
                skipped.append(say(key, lang, label=label, **args))
            lines.append(f"- {label}{o}{say('txt.sev', lang)} {st.severity:.2f}{c}{col}" + sep.join(st.evidence))
            taken, quota = 0, QUOTA.get(st.state, 1)
            if st.state == "underfitting" and diag.features.lr_verdict == "too_low":
                quota = 3  # a larger lr, more optimizer steps and no early decay all serve the same end
            for units, why, args in REMEDIES.get(st.state, lambda _: [])(r):
                if not units:  # the remedy waits: say why
                    skipped.append(f"{label}{col}{say(why, lang, **args)}")
                    continue
                if taken >= quota or len(chosen) >= MAX_CHANGES:
                    break
                todo = [(k, v) for k, v in units if k not in chosen and v != getattr(ctx.cfg, k)]
                if not todo:  # already in place, or already proposed for a more severe state
                    taken += any(k in chosen for k, _ in units)
                    continue
                dirs = [(k, change_direction(getattr(ctx.cfg, k), v)) for k, v in todo]
                balance = any(k in IMBALANCE_KEYS for k in chosen)
                if chosen and any((k in IMBALANCE_KEYS) != balance for k, _ in todo):
                    # a class-balance remedy is judged over a longer window and on minority recall: bundled
                    # with an lr or regularisation change, one bad half would roll back the other
                    kind = say("txt.kind_balance" if balance else "txt.kind_other", lang)
                    skipped.append(say("txt.apart", lang, keys=", ".join(k for k, _ in todo), kind=kind))
                    taken += 1
                    continue
                hit = [f"{k} {d}" for k, d in dirs if (k, d) in blocked]
                if hit:
                    skipped.append(f"{', '.join(hit)}{o}{say('txt.reverted', lang)}{c}")
                    exhausted = True
                    continue
                reason = f"{label}{col}{say(why, lang, **args)}"
                again = [retried[kd] for kd in dirs if kd in retried]
                if again:
                    reason += f"{o}{say('txt.retry', lang, e=max(again))}{c}"
                for k, v in todo[: MAX_CHANGES - len(chosen)]:
                    chosen[k] = ProposedChange(key=k, value=v, reason=reason)
                taken += 1
        if not lines:
            return Proposal(analysis=say("txt.healthy", lang) + " " + " ".join(diag.states[0].evidence if diag.states else []),
                            changes=[], advisor=self.name)
        out = [f"{say('txt.diag', lang)}{col}"] + lines
        if chosen:
            out.append(f"{say('txt.prop', lang)}{col}")
            out += [f"- {x.key}{col}{_show(getattr(ctx.cfg, x.key))} -> {_show(x.value)}{o}{x.reason}{c}"
                    for x in chosen.values()]
        if skipped:
            out.append(f"{say('txt.skip', lang)}{col}" + sep.join(skipped))
        if not chosen:
            out.append(say("txt.exhausted", lang) if exhausted else f"{say('txt.prop', lang)}{col}{say('txt.none', lang)}")
        return Proposal(analysis="\n".join(out), changes=list(chosen.values()), advisor=self.name,
                        detail={"primary": diag.primary, "skipped": skipped})
