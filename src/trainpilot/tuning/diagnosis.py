"""Diagnose a run from its whole metric history.

:func:`diagnose` reads the per-epoch train/val records (``metrics.jsonl``) and returns the states
it finds (healthy, underfitting, overfitting, diverging, plateau, unstable, imbalance), each with
a severity in [0, 1] and evidence sentences that quote the numbers, plus the features behind them.
It is pure Python and tolerates short histories, missing fields and NaN/inf values (as floats or
as the strings ``"nan"``/``"inf"``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from trainpilot.config import TrainConfig
from trainpilot.reports.data import epoch_rows as merged_rows

STATES = ("healthy", "underfitting", "overfitting", "diverging", "plateau", "unstable", "imbalance")
MIN_SEVERITY = 0.3       # weaker findings stay in the features only
PLATEAU_REL = 0.01       # relative improvement of the monitored metric over the window
FLAT_REL = 0.01          # |relative loss change| per epoch below which the loss "barely moves"
COLLAPSE_RECALL = 0.2    # a class below this recall (while the mean is higher) has collapsed
HUGE_GRAD_NORM = 100.0
# Peak learning rates that train reliably, per optimizer family, from scratch and when fine-tuning
# pretrained weights. A curve that barely moves is read with this prior: a dead network at lr 0.2
# (Adam) also "barely moves".
LR_TYPICAL = {("SGD", False): (1e-3, 1.0), ("SGD", True): (1e-4, 0.1)}
LR_TYPICAL_ADAPTIVE = {False: (1e-4, 5e-3), True: (1e-5, 2e-3)}  # Adam, AdamW, RAdam, AdaBelief, RMSprop


def fine_tuning(cfg: TrainConfig) -> bool:
    return bool(cfg.use_pretrained or cfg.pretrained_path)


def typical_lr(cfg: TrainConfig) -> tuple[float, float]:
    """The usual peak-lr range for ``cfg``'s optimizer, from scratch or from pretrained weights."""
    return LR_TYPICAL.get((cfg.optimizer, fine_tuning(cfg)), LR_TYPICAL_ADAPTIVE[fine_tuning(cfg)])

_T = {
    "nonfinite_loss": ("{name} is {value} at epoch {epoch} (non-finite)", "第 {epoch} 轮 {name} 为 {value}（非有限值）"),
    "nonfinite_steps": ("{n} of {steps} training steps had a non-finite loss in epoch {epoch}",
                        "第 {epoch} 轮有 {n}/{steps} 个训练步的损失为非有限值"),
    "blowup": ("train_loss {last:.4g} at epoch {epoch} is {ratio:.2f}x its best {best:.4g} (epoch {best_epoch}; "
               "threshold {thr:g}x)", "第 {epoch} 轮 train_loss {last:.4g} 是其最佳值 {best:.4g}（第 {best_epoch} 轮）的 "
               "{ratio:.2f} 倍（阈值 {thr:g} 倍）"),
    "loss_rising": ("train_loss rose {k} epochs in a row ({a:.4g} -> {b:.4g}, {pct:+.0f}% per epoch)",
                    "train_loss 连续 {k} 轮上升（{a:.4g} -> {b:.4g}，每轮 {pct:+.0f}%）"),
    "near_chance": ("val_accuracy {va:.3f} is near chance ({chance:.3f} for {k} classes) after {n} epoch(s)",
                    "训练 {n} 轮后 val_accuracy 为 {va:.3f}，接近随机猜测水平（{k} 类时为 {chance:.3f}）"),
    "not_fitting": ("train_accuracy is only {ta:.3f} after {n} epochs", "训练 {n} 轮后 train_accuracy 仅为 {ta:.3f}"),
    "lr_low": ("train_loss changes only {pct:.2f}% per epoch over the last {w} epochs ({a:.4g} -> {b:.4g}): "
               "lr {lr:g} looks too low", "最近 {w} 轮 train_loss 每轮仅变化 {pct:.2f}%（{a:.4g} -> {b:.4g}）：学习率 {lr:g} 可能过低"),
    "lr_high": ("train_loss is rising or oscillating ({pct:+.1f}% per epoch, {sc} direction changes, max grad norm "
                "{gmax:.3g}): lr {lr:g} looks too high", "train_loss 在上升或振荡（每轮 {pct:+.1f}%，方向变化 {sc} 次，"
                "最大梯度范数 {gmax:.3g}）：学习率 {lr:g} 可能过高"),
    "collapsed": ("val accuracy never rose above chance (best {va:.3f} for {k} classes; train {ta:.3f}): the "
                  "weights hold nothing worth keeping", "验证准确率从未高于随机水平（{k} 类时最佳为 {va:.3f}；训练 {ta:.3f}）："
                  "当前权重没有值得保留的内容"),
    "lr_slow": ("the loss falls smoothly but slowly ({a:.4g} -> {b:.4g} over {n} epochs): lr {lr:g} has room to grow",
                "损失平稳但缓慢地下降（{n} 轮内 {a:.4g} -> {b:.4g}）：学习率 {lr:g} 仍有提升空间"),
    "fine_tuning": ("fine-tuning", "微调"),
    "from_scratch": ("from scratch", "从头训练"),
    "lr_prior_high": ("lr {lr:g} is above the usual range for {opt} ({lo:g}-{hi:g}), so a flat loss means a stalled, "
                      "not a slow, network", "学习率 {lr:g} 高于 {opt} 的常用范围（{lo:g}-{hi:g}），损失停滞说明网络已失效而非学得慢"),
    "lr_prior_low": ("lr {lr:g} is below the usual range for {opt} ({lo:g}-{hi:g})",
                     "学习率 {lr:g} 低于 {opt} 的常用范围（{lo:g}-{hi:g}）"),
    "val_rising": ("val_loss rose {k} epochs in a row ({a:.4g} -> {b:.4g}) while train_loss fell {pct:.0f}%",
                   "val_loss 连续 {k} 轮上升（{a:.4g} -> {b:.4g}），而 train_loss 下降了 {pct:.0f}%"),
    "acc_gap": ("train/val accuracy gap is {gap:.3f} (train {ta:.3f}, val {va:.3f}); val_loss is {pct:.0f}% above "
                "its best {best:.4g}", "训练/验证准确率差距为 {gap:.3f}（训练 {ta:.3f}，验证 {va:.3f}）；val_loss 比其最佳值 "
                "{best:.4g} 高 {pct:.0f}%"),
    "plateau": ("{metric} has not improved by 1% over the last {w} epochs (best {recent:.4g} vs {before:.4g} before: "
                "{pct:+.2f}%)", "最近 {w} 轮 {metric} 提升不足 1%（最佳 {recent:.4g}，此前 {before:.4g}：{pct:+.2f}%）"),
    "oscillation": ("val_loss changed direction {sc} times in the last {m} epochs (std of its changes {std:.3g}, "
                    "{rel:.0f}% of its mean)", "最近 {m} 轮 val_loss 方向变化 {sc} 次（变化量标准差 {std:.3g}，为均值的 {rel:.0f}%）"),
    "grad_growth": ("mean gradient norm grew {g:.1f}x over the last {w} epochs ({a:.3g} -> {b:.3g})",
                    "最近 {w} 轮平均梯度范数增长了 {g:.1f} 倍（{a:.3g} -> {b:.3g}）"),
    "collapse": ("class {name} has recall {r:.2f} while the mean recall is {mean:.2f}",
                 "类别 {name} 的召回率为 {r:.2f}，而平均召回率为 {mean:.2f}"),
    "minority": ("training counts are imbalanced {ratio:.1f}:1 (largest {big} = {nb}, smallest {small} = {ns}); "
                 "the smallest class has recall {r:.2f}", "训练样本数不均衡 {ratio:.1f}:1（最多 {big} = {nb}，最少 {small} = {ns}）；"
                 "最少类别的召回率为 {r:.2f}"),
    "healthy": ("{metric} moved from {a:.4g} to {b:.4g} over the last {w} epochs; no problem found",
                "最近 {w} 轮 {metric} 从 {a:.4g} 变为 {b:.4g}；未发现问题"),
    "no_history": ("no epochs recorded yet", "尚无训练记录"),
}


def _say(lang: str, key: str, **kw: Any) -> str:
    return _T[key][1 if lang == "zh" else 0].format(**kw)


@dataclass
class State:
    state: str
    severity: float
    evidence: list[str] = field(default_factory=list)


@dataclass
class Diagnosis:
    """States sorted by severity (most severe first) and the features they were derived from."""

    states: list[State]
    features: dict[str, Any]
    lang: str = "en"
    window: int = 3

    @property
    def primary(self) -> str:
        return self.states[0].state if self.states else "healthy"

    def state(self, name: str) -> State | None:
        return next((s for s in self.states if s.state == name), None)

    def to_dict(self) -> dict[str, Any]:
        clean = {k: (v if not isinstance(v, float) else float(f"{v:.4g}") if math.isfinite(v) else str(v))
                 for k, v in self.features.items()}
        return {"primary": self.primary, "states": [{"state": s.state, "severity": round(s.severity, 3),
                                                      "evidence": list(s.evidence)} for s in self.states],
                "features": clean}


def num(x: Any) -> float:
    """A metric value as float; missing or unreadable values are NaN ("inf"/"nan" strings included)."""
    if x is None or isinstance(x, bool):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def epoch_rows(history: list[dict]) -> list[dict]:
    """One row per epoch (sorted): the reports' merged rows as numbers, plus what diagnosis needs."""
    out = []
    for row in merged_rows(history):
        t, v = row["train"] or {}, row["val"] or {}
        out.append({"epoch": row["epoch"], **{k: num(row[k]) for k in
                                              ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr")},
                    "gn_mean": num(t.get("grad_norm_mean")), "gn_max": num(t.get("grad_norm_max")),
                    "nonfinite": num(t.get("nonfinite_steps")), "steps": num(t.get("steps")),
                    "ema_acc": num(v.get("ema_accuracy")), "per_class": v.get("per_class") or {},
                    "class_names": v.get("class_names") or [], "has": {"train_loss": bool(t), "val_loss": bool(v)}})
    return out


def _finite(xs: list[float]) -> list[float]:
    return [x for x in xs if math.isfinite(x)]


def slope(ys: list[float]) -> float:
    """Least-squares slope of ``ys`` against 0..n-1 (NaN with fewer than 2 finite points)."""
    pts = [(i, y) for i, y in enumerate(ys) if math.isfinite(y)]
    if len(pts) < 2:
        return math.nan
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else math.nan


def _rel_trend(ys: list[float]) -> float:
    f = _finite(ys)
    mean = sum(abs(y) for y in f) / len(f) if f else math.nan
    return slope(ys) / mean if f and mean > 0 else math.nan


def _sign_changes(ys: list[float]) -> tuple[int, float]:
    """Direction changes of ``ys`` and the std of its successive differences."""
    f = _finite(ys)
    d = [b - a for a, b in zip(f, f[1:])]
    sc = sum(1 for a, b in zip(d, d[1:]) if a * b < 0)
    std = math.sqrt(sum((x - sum(d) / len(d)) ** 2 for x in d) / len(d)) if d else math.nan
    return sc, std


def _run_up(ys: list[float]) -> int:
    """How many epochs in a row ``ys`` rose at its end."""
    k = 0
    for a, b in zip(reversed(ys[:-1]), reversed(ys)):
        if not (math.isfinite(a) and math.isfinite(b) and b > a):
            break
        k += 1
    return k


def diagnose(history: list[dict], cfg: TrainConfig, train_counts: list[int] | None = None,
             window: int = 3, lang: str = "en") -> Diagnosis:
    """Diagnose the run from every epoch in ``history``; ``window`` epochs define "recent"."""
    rows, window = epoch_rows(history), max(2, int(window))
    if not rows:
        return Diagnosis([State("healthy", 0.0, [_say(lang, "no_history")])], {"epochs": 0}, lang, window)
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    tl, ta, vl, va, last = col("train_loss"), col("train_acc"), col("val_loss"), col("val_acc"), rows[-1]
    n, ep, counts = len(rows), last["epoch"], list(train_counts or [])
    names = list(next((r["class_names"] for r in reversed(rows) if r["class_names"]), []))
    k = len(names) or len(counts) or len(cfg.class_weights or {})
    chance = 1.0 / k if k else math.nan
    mon = cfg.monitor
    m_raw = col({"val_accuracy": "val_acc", "val_macro_f1": "val_f1", "val_loss": "val_loss"}[mon])
    m = [-x for x in m_raw] if mon == "val_loss" else m_raw
    recent = tl[-window:]
    f: dict[str, Any] = {"epochs": n, "num_classes": k, "chance": chance, "train_loss": tl[-1], "val_loss": vl[-1],
                         "train_accuracy": ta[-1], "val_accuracy": va[-1], "val_macro_f1": last["val_f1"], "lr": last["lr"]}
    f["loss_gap"] = vl[-1] - tl[-1]
    f["loss_gap_slope"] = slope([v - t for v, t in zip(vl[-window:], tl[-window:])])
    f["train_loss_trend"], f["val_loss_trend"] = _rel_trend(recent), _rel_trend(vl[-window:])
    f["val_acc_over_chance"] = va[-1] / chance if k else math.nan
    sc_v, std_v = _sign_changes(vl[-2 * window:])
    sc_t, std_t = _sign_changes(tl[-2 * window:])
    fv = _finite(vl[-2 * window:])
    f["val_loss_sign_changes"], f["train_loss_sign_changes"] = sc_v, sc_t
    f["val_loss_diff_std_rel"] = std_v / (sum(fv) / len(fv)) if fv and sum(fv) > 0 else math.nan
    gm = _finite(col("gn_mean"))
    f["grad_norm_mean"] = sum(gm) / len(gm) if gm else math.nan
    gx = _finite(col("gn_max")[-window:])  # recent: one wild early epoch must not colour the verdict forever
    f["grad_norm_max"] = max(gx) if gx else math.nan
    gw = _finite(col("gn_mean")[-window:])
    f["grad_norm_growth"] = gw[-1] / gw[0] if len(gw) >= 2 and gw[0] > 0 else math.nan
    f["ema_gap"] = last["ema_acc"] - va[-1]
    f["steps_per_epoch"] = last["steps"]
    states: list[State] = []
    add = lambda name, sev, ev: states.append(State(name, round(min(1.0, sev), 3), ev))  # noqa: E731

    # diverging
    ev, sev = [], 0.0
    for name, value in (("train_loss", tl[-1]), ("val_loss", vl[-1])):
        if not math.isfinite(value) and last["has"][name]:
            ev.append(_say(lang, "nonfinite_loss", name=name, value=value, epoch=ep))
            sev = 1.0
    bad, steps = last["nonfinite"], last["steps"]
    if bad > 0:
        ev.append(_say(lang, "nonfinite_steps", n=int(bad), steps=int(steps) if math.isfinite(steps) else "?", epoch=ep))
        sev = max(sev, 0.6 + 0.4 * min(1.0, bad / steps) if steps > 0 else 0.8)
    thr = cfg.intelligent_training.divergence_threshold
    prev = [(x, rows[i]["epoch"]) for i, x in enumerate(tl[:-1]) if math.isfinite(x)]
    best, best_ep = min(prev) if prev else (math.nan, 0)
    ratio = tl[-1] / best if prev and best > 0 and math.isfinite(tl[-1]) else math.nan
    f["train_loss_vs_best"] = ratio
    if ratio > thr:
        ev.append(_say(lang, "blowup", last=tl[-1], epoch=ep, ratio=ratio, best=best, best_epoch=best_ep, thr=thr))
        sev = max(sev, 0.7 + 0.3 * min(1.0, (ratio - thr) / thr))
    up, t_trend = _run_up(tl), f["train_loss_trend"]
    if up >= 2 and t_trend > 0.1:
        ev.append(_say(lang, "loss_rising", k=up, a=tl[-1 - up], b=tl[-1], pct=100 * t_trend))
        sev = max(sev, 0.6)
    f["nonfinite"] = sev == 1.0
    if ev:
        add("diverging", sev, ev)

    # learning-rate verdict from the train-loss curve
    near = bool(k) and va[-1] <= chance + max(0.05, 0.25 * chance)
    osc, far = sc_t >= 2 and std_t > 0, near or ta[-1] < 0.9
    if n < 2 or not math.isfinite(t_trend):
        verdict = "too_high" if states else "unknown"
    elif (states or t_trend > 0.02 or osc or f["grad_norm_growth"] > 5
          or (f["grad_norm_max"] > HUGE_GRAD_NORM and t_trend > -0.02)):  # big gradients matter when the loss stalls
        verdict = "too_high"
    elif abs(t_trend) < FLAT_REL and far:
        verdict = "too_low"
    else:
        verdict = "ok"
    lo, hi = typical_lr(cfg)
    opt = f"{cfg.optimizer} " + _say(lang, "fine_tuning" if fine_tuning(cfg) else "from_scratch")
    # a run that does not do well, at an lr outside the usual range, is read as the lr's fault
    poor = near or ta[-1] < 0.9 or ta[-1] - va[-1] > 0.1
    prior = None
    if cfg.learning_rate > hi and (verdict in ("too_low", "unknown") or (verdict == "ok" and poor)):
        verdict, prior = "too_high", _say(lang, "lr_prior_high", lr=cfg.learning_rate, opt=opt, lo=lo, hi=hi)
    elif verdict in ("ok", "unknown") and cfg.learning_rate < lo and (near or not math.isfinite(t_trend) or abs(t_trend) < 0.05):
        verdict, prior = "too_low", _say(lang, "lr_prior_low", lr=cfg.learning_rate, opt=opt, lo=lo, hi=hi)
    f["lr_verdict"] = verdict
    f["lr_prior"] = ("high" if cfg.learning_rate > hi and verdict == "too_high" else
                     "low" if cfg.learning_rate < lo and verdict == "too_low" else None)
    lr_ev = {"too_low": _say(lang, "lr_low", pct=100 * abs(t_trend) if math.isfinite(t_trend) else 0.0,
                             w=len(recent), a=recent[0], b=recent[-1], lr=last["lr"]),
             "too_high": _say(lang, "lr_high", pct=100 * t_trend if math.isfinite(t_trend) else 0.0, sc=sc_t,
                              gmax=f["grad_norm_max"], lr=last["lr"])}.get(verdict)
    if prior:
        lr_ev = f"{lr_ev}; {prior}" if lr_ev else prior

    # underfitting
    f["near_chance"] = near
    # a smooth, slow descent at an lr in the lower half of the usual range: room for a larger lr
    slow = verdict == "ok" and sc_t == 0 and t_trend < 0 and cfg.learning_rate < math.sqrt(lo * hi)
    never = max(_finite(ta) or [math.nan]), max(_finite(va) or [math.nan])
    f["collapsed"] = bool(near and verdict == "too_high" and never[1] <= chance + max(0.05, 0.25 * chance))
    if f["collapsed"]:
        lr_ev = "; ".join(x for x in (lr_ev, _say(lang, "collapsed", ta=never[0], va=never[1], k=k)) if x)
    diverging = bool(states)  # a diverging run fits poorly because it diverges; that remedy comes first
    if near and not diverging:
        ev = [_say(lang, "near_chance", va=va[-1], chance=chance, k=k, n=n)] + ([lr_ev] if lr_ev else [])
        add("underfitting", 0.35 if n == 1 else 0.6 + 0.1 * min(3, n - 1), ev)
    elif not diverging and n >= 3 and verdict in ("too_low", "ok") and (ta[-1] < 0.6 or (ta[-1] < 0.8 and slow)):
        if verdict == "ok" and slow:
            verdict = f["lr_verdict"] = "too_low"
            lr_ev = _say(lang, "lr_slow", ta=ta[-1], n=n, a=tl[0], b=tl[-1], lr=cfg.learning_rate)
            if cfg.learning_rate < lo:
                f["lr_prior"] = "low"
        add("underfitting", 0.5, [_say(lang, "not_fitting", ta=ta[-1], n=n)] + ([lr_ev] if lr_ev else []))
    elif not diverging and f["lr_prior"] and poor and lr_ev:
        add("underfitting", 0.5, [lr_ev])

    # overfitting
    vup = _run_up(vl)
    ev, sev = [], 0.0
    # a rise beyond noise, while the monitored metric set no new best (a val loss that rises while the
    # val accuracy climbs is the model getting bolder on what it gets right, not overfitting)
    fm = [x if math.isfinite(x) else -math.inf for x in m]
    new_best = mon != "val_loss" and 0 < vup < n and max(fm[-vup:]) > max(fm[:-vup])
    if n >= 3 and vup >= 2 and tl[-1] < tl[-1 - vup] and vl[-1] > 1.05 * vl[-1 - vup] and not new_best:
        fall = (tl[-1 - vup] - tl[-1]) / tl[-1 - vup] if tl[-1 - vup] > 0 else 0.0
        ev.append(_say(lang, "val_rising", k=vup, a=vl[-1 - vup], b=vl[-1], pct=100 * fall))
        sev = min(0.9, 0.45 + 0.1 * vup + min(0.2, fall))
    fvl = _finite(vl)
    best_vl = min(fvl) if fvl else math.nan
    above = vl[-1] / best_vl - 1 if best_vl > 0 else math.nan
    gap = ta[-1] - va[-1]
    f["accuracy_gap"], f["val_loss_above_best"] = gap, above
    if n >= 3 and gap > 0.15 and above > 0.1:
        ev.append(_say(lang, "acc_gap", gap=gap, ta=ta[-1], va=va[-1], pct=100 * above, best=best_vl))
        sev = max(sev, min(0.85, 0.4 + gap))
    if ev and not near:
        add("overfitting", sev, ev)

    # plateau
    if n > window and _finite(m):
        before, rec = max(_finite(m[:-window]) or [-math.inf]), max(_finite(m[-window:]) or [-math.inf])
        rel = (rec - before) / max(abs(before), 1e-8) if math.isfinite(before) and math.isfinite(rec) else math.nan
        f["plateau_improvement"] = rel
        if rel < PLATEAU_REL:
            sign = -1 if mon == "val_loss" else 1
            converged = mon != "val_loss" and rec >= 0.98
            add("plateau", 0.2 if converged else (0.5 if rel <= 0 else 0.4),
                [_say(lang, "plateau", metric=mon, pct=100 * rel, w=window, recent=sign * rec, before=sign * before)])

    # unstable
    ev, sev = [], 0.0
    rel_std = f["val_loss_diff_std_rel"]
    net = abs(fv[-1] - fv[0]) / (len(fv) - 1) if len(fv) > 1 else 0.0
    # early training oscillates too while the metric climbs: only an oscillation without progress is instability
    stuck = f.get("plateau_improvement", math.nan) < PLATEAU_REL
    if len(fv) >= 4 and sc_v >= 2 and sc_v >= 0.6 * (len(fv) - 2) and rel_std > 0.1 and std_v > net and stuck:
        ev.append(_say(lang, "oscillation", sc=sc_v, m=len(fv), std=std_v, rel=100 * rel_std))
        sev = min(0.8, 0.5 + 0.1 * (sc_v - 2))
    if f["grad_norm_growth"] > 5:
        ev.append(_say(lang, "grad_growth", g=f["grad_norm_growth"], w=len(gw), a=gw[0], b=gw[-1]))
        sev = max(sev, 0.5)
    if ev:
        add("unstable", sev, ev)

    # imbalance
    recalls = {c: num((v or {}).get("recall")) for c, v in last["per_class"].items() if isinstance(v, dict)}
    recalls = {c: r for c, r in recalls.items() if math.isfinite(r)}
    ev, sev = [], 0.0
    if counts and min(counts) >= 0 and max(counts) > 0:
        f["imbalance_ratio"] = max(counts) / max(1, min(counts))
    if recalls:
        mean_r = sum(recalls.values()) / len(recalls)
        worst = min(recalls, key=recalls.get)
        f.update(min_class_recall=recalls[worst], mean_class_recall=mean_r, worst_class=worst)
        if recalls[worst] < COLLAPSE_RECALL and mean_r >= recalls[worst] + 0.2:
            ev.append(_say(lang, "collapse", name=json.dumps(worst, ensure_ascii=False), r=recalls[worst], mean=mean_r))
            sev = 0.7
        if f.get("imbalance_ratio", 1.0) >= 1.5 and len(names) == len(counts):
            small, big = names[counts.index(min(counts))], names[counts.index(max(counts))]
            r = recalls.get(small, math.nan)
            f["minority_recall"] = r
            if r < 0.5 and mean_r > r:
                ev.append(_say(lang, "minority", ratio=f["imbalance_ratio"], big=json.dumps(big, ensure_ascii=False),
                               nb=max(counts), small=json.dumps(small, ensure_ascii=False), ns=min(counts), r=r))
                sev = max(sev + 0.1 if sev else 0.55, 0.55)
    if ev:
        add("imbalance", sev * (0.5 if near else 1.0), ev)

    states = [s for s in states if s.severity >= MIN_SEVERITY]
    states.sort(key=lambda s: -s.severity)
    if not states:
        a, b = (m_raw[-window], m_raw[-1]) if n >= window else (m_raw[0], m_raw[-1])
        states = [State("healthy", 0.0, [_say(lang, "healthy", metric=mon, a=a, b=b, w=min(n, window))])]
    return Diagnosis(states, f, lang, window)


def _cell(x: float, fmt: str) -> str:
    return "-" if x is None else (format(x, fmt) if math.isfinite(x) else str(x) if not math.isnan(x) else "nan")


def format_history_table(history: list[dict], lang: str = "en", max_rows: int = 40) -> str:
    """Every epoch as a compact pipe table for prompts (the middle is elided past ``max_rows``)."""
    head = ("轮次 | 训练损失 | 训练准确率 | 验证损失 | 验证准确率 | 验证F1 | 学习率" if lang == "zh"
            else "epoch | train_loss | train_acc | val_loss | val_acc | val_f1 | lr")
    rows = epoch_rows(history)
    lines = [f"{r['epoch']} | {_cell(r['train_loss'], '.4f')} | {_cell(r['train_acc'], '.4f')} | "
             f"{_cell(r['val_loss'], '.4f')} | {_cell(r['val_acc'], '.4f')} | {_cell(r['val_f1'], '.4f')} | "
             f"{_cell(r['lr'], '.3g')}" for r in rows]
    if len(lines) > max_rows:
        keep = max_rows - 3
        gap = len(lines) - 3 - keep
        lines = lines[:3] + [f"... ({gap} {'轮省略' if lang == 'zh' else 'epochs omitted'})"] + lines[-keep:]
    return "\n".join([head] + lines)
