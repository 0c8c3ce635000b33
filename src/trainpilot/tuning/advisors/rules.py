"""The rule engine: the standard remedy for each diagnosed state, deterministic and offline.

States are treated most severe first. Each state has remedies in order of preference; a remedy
that would repeat a change rolled back earlier in this run (same key, same direction), or that
changes nothing, is skipped and the next one is taken instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

from trainpilot.tuning.actions import MAX_CHANGES, Proposal, ProposedChange, change_direction, tunable_spec
from trainpilot.tuning.diagnosis import FLAT_REL, diagnose, typical_lr

from .base import Advisor, AdvisorContext

STATE_NAMES = {"zh": {"healthy": "健康", "underfitting": "欠拟合", "overfitting": "过拟合", "diverging": "发散",
                      "plateau": "停滞", "unstable": "不稳定", "imbalance": "类别不均衡"}}
QUOTA = {"diverging": 2, "underfitting": 1, "overfitting": 3, "imbalance": 1, "plateau": 1, "unstable": 2}
# Schedules that keep lowering the lr by themselves (no plateau cut needed), and schedules that cut it
# early and hard (a starved run is better off on a cosine); ExponentialLR is both.
ANNEALING = ("CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau", "ExponentialLR")
STEP_DECAY = ("StepLR", "MultiStepLR", "ExponentialLR")
REVERTED_STATUSES = ("reverted", "rolled_back")
# Above this count ratio, class weights use log_inverse: balanced weights (count ratio : 1) let a few
# minority images dominate each batch's gradient and over-predict the minority class.
GENTLE_WEIGHTS_ABOVE = 8.0

_WHY = {
    "lr_down_div": ("the loss is blowing up: learning rate x{f:g}", "损失发散：学习率 x{f:g}"),
    "clip_on": ("clip the global gradient norm at {v:g} to stop single bad steps",
                "将全局梯度范数裁剪到 {v:g}，避免个别异常步"),
    "accum_up": ("average gradients over {s} micro-batches for a steadier step",
                 "在 {s} 个微批次上累积梯度，使更新更平稳"),
    "lr_up": ("the loss barely moves, so the learning rate looks too low: x{f:g}", "损失几乎不变，学习率可能过低：x{f:g}"),
    "lr_down_high": ("the loss is rising or oscillating, so the learning rate looks too high: x{f:g}",
                     "损失上升或振荡，学习率可能过高：x{f:g}"),
    "accum_off": ("only {s} optimizer steps per epoch: gradient accumulation off, so each batch updates the weights",
                  "每轮仅 {s} 次优化步：关闭梯度累积，每个批次都更新权重"),
    "cosine": ("the {old} schedule cuts the lr while the model still underfits: a cosine schedule over the remaining "
               "epochs (warm restart from the current weights)", "{old} 在模型仍欠拟合时就降低学习率：改为余弦调度"
               "覆盖剩余轮次（从当前权重热重启）"),
    "less_dropout": ("the model does not fit the training data: less dropout", "模型未能拟合训练数据：降低 dropout"),
    "less_wd": ("the model does not fit the training data: less weight decay", "模型未能拟合训练数据：降低权重衰减"),
    "no_mixup": ("the model does not fit the training data: mixup/cutmix off", "模型未能拟合训练数据：关闭 mixup/cutmix"),
    "more_wd": ("more weight decay (x{f:g}) to regularize", "增大权重衰减（x{f:g}）以加强正则化"),
    "smoothing": ("label smoothing against over-confident predictions", "启用标签平滑，抑制过度自信的预测"),
    "mixup": ("mixup/cutmix as a strong regularizer", "启用 mixup/cutmix 作为强正则化"),
    "augment": ("data augmentation on", "启用数据增强"),
    "dropout": ("more dropout before the classifier ({v:g})", "提高分类头前的 dropout（{v:g}）"),
    "weights": ("weight the loss by class ({s}) so minority classes count", "按类别加权损失（{s}），提高少数类的权重"),
    "weights_gentle": ("weight the loss by class with log_inverse weights ({w:.1f}:1 rather than the {r:.3g}:1 of balanced "
                       "weights) so the minority class counts without dominating every batch it appears in",
                       "按类别加权损失，采用 log_inverse 权重（{w:.1f}:1，而非 balanced 权重的 {r:.3g}:1），"
                       "使少数类受到重视而不主导其所在批次的梯度"),
    "weights_full": ("the minority class still has recall {rec:.2f} with log_inverse weights: balanced weights "
                     "({r:.3g}:1)", "使用 log_inverse 权重后少数类召回率仍为 {rec:.2f}：改用 balanced 权重（{r:.3g}:1）"),
    "lr_plateau": ("the monitored metric has stopped improving: learning rate x{f:g}",
                   "监控指标不再提升：学习率 x{f:g}"),
    "lr_unstable": ("the validation loss oscillates: learning rate x{f:g}", "验证损失振荡：学习率 x{f:g}"),
}
_TXT = {
    "en": {"diag": "Diagnosis", "sev": "severity", "prop": "Proposed", "skip": "Skipped", "none": "no changes",
           "reverted": "reverted earlier in this run", "healthy": "Training looks healthy; no changes proposed.",
           "exhausted": "every standard remedy for these findings was tried and reverted earlier; no changes proposed.",
           "annealing": "{label}: no lr cut, the {s} schedule already lowers the lr"},
    "zh": {"diag": "诊断", "sev": "严重程度", "prop": "建议", "skip": "跳过", "none": "无变更",
           "reverted": "本次训练中曾被回滚", "healthy": "训练状态健康，不建议修改。",
           "exhausted": "针对这些问题的标准措施此前均已尝试并被回滚，本次不建议修改。",
           "annealing": "{label}：不降低学习率，{s} 调度已在逐步降低学习率"},
}


def _show(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else json.dumps(v, ensure_ascii=False)


def _r3(x: float) -> float:
    return float(f"{x:.3g}")


def reverted_changes(past_interventions: list[dict]) -> set[tuple[str, str]]:
    """``(key, direction)`` of every change in a reverted earlier intervention."""
    out = set()
    for rec in past_interventions or []:
        if not isinstance(rec, dict) or str(rec.get("status", "")).lower() not in REVERTED_STATUSES:
            continue
        for c in rec.get("changes") or []:
            if isinstance(c, dict) and "key" in c:
                out.add((c["key"], change_direction(c.get("old"), c.get("new"))))
    return out


class RuleAdvisor(Advisor):
    """Maps each diagnosed state to its standard remedy, with the evidence as the reason."""

    name = "rules"

    def _lr(self, ctx: AdvisorContext, factor: float) -> float:
        f = ctx.it_cfg.lr_max_factor
        return _r3(ctx.cfg.learning_rate * min(max(factor, 1.0 / f), f))

    def _clamp(self, ctx: AdvisorContext, key: str, value: float) -> float:
        spec = tunable_spec(key, ctx.it_cfg)
        if spec.high is not None and value > spec.high:
            value = spec.high if not spec.high_open else spec.high * 0.99
        return value

    def _remedies(self, state: str, ctx: AdvisorContext) -> list[tuple[list[tuple[str, Any]], str, dict]]:
        """Ordered remedies for ``state``: (changes, reason key, reason args)."""
        cfg, feats = ctx.cfg, ctx.diagnosis.features
        clip = ([("gradient_clipping", True), ("gradient_clipping_value", min(cfg.gradient_clipping_value, 1.0))],
                "clip_on", {"v": min(cfg.gradient_clipping_value, 1.0)})
        steps = max(2, cfg.accumulation_steps * 2)
        accum = ([("gradient_accumulation_enabled", True), ("gradient_accumulation_steps", steps)], "accum_up", {"s": steps})
        if state == "diverging":
            return [([("learning_rate", self._lr(ctx, 0.1))], "lr_down_div", {"f": 0.1}), clip, accum]
        if state == "unstable":
            return [([("learning_rate", self._lr(ctx, 0.5))], "lr_unstable", {"f": 0.5}), clip, accum]
        if state == "plateau":
            if cfg.lr_scheduler in ANNEALING:
                return []  # the schedule is already lowering the lr (see advise)
            return [([("learning_rate", self._lr(ctx, 0.3))], "lr_plateau", {"f": 0.3})]
        if state == "underfitting":
            if feats.get("lr_verdict") == "too_high":
                typical_high = typical_lr(cfg)[1]
                sharp = (feats.get("train_loss_trend", 0) > 0.1 or feats.get("grad_norm_max", 0) > 100
                         or cfg.learning_rate > typical_high)
                f = 0.1 if sharp else 0.3
                low = typical_lr(cfg)[0]  # the verdict is "too high", so never below the usual range
                if cfg.learning_rate <= low:
                    return [clip]
                # From above the usual range, land no lower than half its top: a cut to lr/10 from just
                # above it would leave a rescued run training at a fraction of a normal rate.
                floor = typical_high / 2 if cfg.learning_rate > typical_high else low
                new = max(self._lr(ctx, f), floor)
                return [([("learning_rate", new)], "lr_down_high", {"f": _r3(new / cfg.learning_rate)}), clip]
            trend = feats.get("train_loss_trend", math.nan)
            flat = math.isfinite(trend) and abs(trend) < FLAT_REL / 10
            f = 10.0 if flat or feats.get("lr_prior") == "low" else 3.0
            steps = int(feats.get("steps_per_epoch") or 0)
            remedies = [([("learning_rate", self._lr(ctx, f))], "lr_up", {"f": f})]
            if cfg.gradient_accumulation_enabled and cfg.gradient_accumulation_steps > 1 and 0 < steps < 50:
                remedies.append(([("gradient_accumulation_enabled", False), ("gradient_accumulation_steps", 1)],
                                 "accum_off", {"s": steps}))
            if cfg.lr_scheduler in STEP_DECAY:
                remedies.append(([("lr_scheduler", "CosineAnnealingLR")], "cosine", {"old": cfg.lr_scheduler}))
            if feats.get("lr_verdict") == "too_low":
                return remedies
            return remedies[:1] + [  # the lr first; the regularizers only when that change was reverted
                ([("dropout_rate", _r3(cfg.dropout_rate / 2) if cfg.dropout_rate > 0.05 else 0.0)], "less_dropout", {}),
                ([("weight_decay", _r3(cfg.weight_decay / 3))] if cfg.weight_decay > 1e-4 else [], "less_wd", {}),
                ([("advanced_augmentation_enabled", False)], "no_mixup", {})]
        if state == "overfitting":
            wd = self._clamp(ctx, "weight_decay", min(0.5, _r3(cfg.weight_decay * 3) if cfg.weight_decay > 0 else 1e-4))
            smooth = [("label_smoothing_enabled", True)] + ([("label_smoothing", 0.1)] if cfg.label_smoothing == 0 else [])
            mix = [("advanced_augmentation_enabled", True)] if cfg.batch_size % 2 == 0 else []
            drop = self._clamp(ctx, "dropout_rate", 0.2 if cfg.dropout_rate < 0.2 else min(0.5, _r3(cfg.dropout_rate + 0.1)))
            return [([("weight_decay", wd)], "more_wd", {"f": 3}), (smooth, "smoothing", {}), (mix, "mixup", {}),
                    ([("use_augmentation", True)], "augment", {}), ([("dropout_rate", drop)], "dropout", {"v": drop})]
        if state == "imbalance":
            ratio = feats.get("imbalance_ratio", 1.0)
            if ratio < 1.5:
                return []  # balanced counts: class weights would all be 1.0 and change nothing
            recall = feats.get("minority_recall", feats.get("min_class_recall", 1.0))
            if not (isinstance(recall, (int, float)) and recall < 0.5):
                return []
            if cfg.use_class_weights and cfg.weight_strategy == "log_inverse":
                # the gentle weights did not lift the minority recall: escalate to the full ratio
                return [([("weight_strategy", "balanced")], "weights_full", {"r": ratio, "rec": recall})]
            units = [("use_class_weights", True)]
            if ratio > GENTLE_WEIGHTS_ABOVE and cfg.weight_strategy in ("balanced", "inverse", "none"):
                # balanced weights would be ratio:1, so a batch's few minority images would dominate its gradient
                units.append(("weight_strategy", "log_inverse"))
                return [(units, "weights_gentle", {"w": 1 + math.log(ratio), "r": ratio})]
            if cfg.weight_strategy == "none" or (cfg.weight_strategy == "custom" and not cfg.class_weights):
                units.append(("weight_strategy", "balanced"))
            return [(units, "weights", {"s": dict(units).get("weight_strategy", cfg.weight_strategy)})]
        return []

    def advise(self, context: AdvisorContext) -> Proposal:
        ctx, lang = context, "zh" if context.language == "zh" else "en"
        txt = _TXT[lang]
        o, c, col, sep = ("（", "）", "：", "；") if lang == "zh" else (" (", ")", ": ", "; ")
        blocked = reverted_changes(ctx.past_interventions)
        diag = ctx.diagnosis
        if diag.lang != lang:  # the same findings, worded in the report's language
            diag = diagnose(ctx.history, ctx.cfg, ctx.train_counts, diag.window, lang)
        evidence = {s.state: s.evidence for s in diag.states}
        chosen: dict[str, ProposedChange] = {}
        skipped: list[str] = []
        exhausted, lines = False, []
        for st in ctx.diagnosis.states:
            if st.state == "healthy":
                continue
            label = STATE_NAMES.get(lang, {}).get(st.state, st.state)
            if st.state == "plateau" and ctx.cfg.lr_scheduler in ANNEALING:
                skipped.append(txt["annealing"].format(label=label, s=ctx.cfg.lr_scheduler))
            lines.append(f"- {label}{o}{txt['sev']} {st.severity:.2f}{c}{col}" + sep.join(evidence.get(st.state, st.evidence)))
            taken, quota = 0, QUOTA.get(st.state, 1)
            if st.state == "underfitting" and ctx.diagnosis.features.get("lr_verdict") == "too_low":
                quota = 3  # a larger lr, more optimizer steps and no early decay all serve the same end
            for units, why, args in self._remedies(st.state, ctx):
                if taken >= quota or len(chosen) >= MAX_CHANGES:
                    break
                todo = [(k, v) for k, v in units if k not in chosen and v != getattr(ctx.cfg, k)]
                if not todo:  # already in place, or already proposed for a more severe state
                    taken += any(k in chosen for k, _ in units)
                    continue
                hit = [(k, change_direction(getattr(ctx.cfg, k), v)) for k, v in todo]
                hit = [f"{k} {d}" for k, d in hit if (k, d) in blocked]
                if hit:
                    skipped.append(f"{', '.join(hit)}{o}{txt['reverted']}{c}")
                    exhausted = True
                    continue
                reason = f"{label}{col}{_WHY[why][1 if lang == 'zh' else 0].format(**args)}"
                for k, v in todo[: MAX_CHANGES - len(chosen)]:
                    chosen[k] = ProposedChange(key=k, value=v, reason=reason)
                taken += 1
        if not lines:
            return Proposal(analysis=txt["healthy"] + " " + " ".join(diag.states[0].evidence if diag.states else []),
                            changes=[], advisor=self.name)
        out = [f"{txt['diag']}{col}"] + lines
        if chosen:
            out.append(f"{txt['prop']}{col}")
            out += [f"- {x.key}{col}{_show(getattr(ctx.cfg, x.key))} -> {_show(x.value)}{o}{x.reason}{c}"
                    for x in chosen.values()]
        if skipped:
            out.append(f"{txt['skip']}{col}" + sep.join(skipped))
        if not chosen:
            out.append(txt["exhausted"] if exhausted else f"{txt['prop']}{col}{txt['none']}")
        return Proposal(analysis="\n".join(out), changes=list(chosen.values()), advisor=self.name,
                        detail={"primary": ctx.diagnosis.primary, "skipped": skipped})
