"""What the diagnosis reads: a run's metric history turned into one typed set of features, once.

:func:`compute_features` is pure Python and tolerates short histories, missing fields and
NaN/inf values (as floats or as the strings ``"nan"``/``"inf"``). The detectors in
:mod:`trainpilot.tuning.diagnosis` only read the :class:`Features` it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from trainpilot.config import TrainConfig
from trainpilot.data.weights import sampled_counts
from trainpilot.reports.data import epoch_rows as merged_rows
from trainpilot.tuning.messages import Msg

FLAT_REL = 0.01          # |relative loss change| per epoch below which the loss "barely moves"
HUGE_GRAD_NORM = 100.0
MAJORITY_SHARE = 0.9     # predictions concentrated on one class beyond this share: collapsed onto it
IMBALANCED = 1.5         # count ratio from which class imbalance is considered at all
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
                    "ema_acc": num(v.get("ema_accuracy")), "ema_loss": num(v.get("ema_loss")),
                    "per_class": v.get("per_class") or {},
                    "cm": v.get("confusion_matrix") or [],
                    "corrected": v.get("prior_corrected") if isinstance(v.get("prior_corrected"), dict) else None,
                    "class_names": v.get("class_names") or [], "has": {"train_loss": bool(t), "val_loss": bool(v)}})
    return out


def finite(xs: list[float]) -> list[float]:
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
    f = finite(ys)
    mean = sum(abs(y) for y in f) / len(f) if f else math.nan
    return slope(ys) / mean if f and mean > 0 else math.nan


def _sign_changes(ys: list[float]) -> tuple[int, float]:
    """Direction changes of ``ys`` and the std of its successive differences."""
    f = finite(ys)
    d = [b - a for a, b in zip(f, f[1:])]
    sc = sum(1 for a, b in zip(d, d[1:]) if a * b < 0)
    std = math.sqrt(sum((x - sum(d) / len(d)) ** 2 for x in d) / len(d)) if d else math.nan
    return sc, std


def run_up(ys: list[float]) -> int:
    """How many epochs in a row ``ys`` rose at its end."""
    k = 0
    for a, b in zip(reversed(ys[:-1]), reversed(ys)):
        if not (math.isfinite(a) and math.isfinite(b) and b > a):
            break
        k += 1
    return k


@dataclass
class Series:
    """The per-epoch curves the features were computed from (evidence quotes them)."""

    rows: list[dict]
    train_loss: list[float]
    train_acc: list[float]
    val_loss: list[float]
    val_acc: list[float]
    monitored: list[float]  # the monitored metric, "higher is better"
    counts: list[int]
    names: list[str]


@dataclass
class Features:
    """Everything the detectors read, computed once per analysis. NaN means "not measurable yet"."""

    epochs: int
    epoch: int
    window: int
    monitor: str
    num_classes: int
    chance: float
    train_loss: float
    val_loss: float
    train_accuracy: float
    val_accuracy: float
    val_macro_f1: float
    lr: float
    loss_gap: float = math.nan
    loss_gap_slope: float = math.nan
    train_loss_trend: float = math.nan
    val_loss_trend: float = math.nan
    val_acc_over_chance: float = math.nan
    train_loss_sign_changes: int = 0
    val_loss_sign_changes: int = 0
    ema_val_loss_steady: bool = False  # the EMA weights' val loss, over the last 2 windows (4+ epochs), turned at most once
    train_loss_diff_std: float = math.nan
    val_loss_diff_std: float = math.nan
    val_loss_diff_std_rel: float = math.nan
    grad_norm_mean: float = math.nan
    grad_norm_max: float = math.nan
    grad_norm_growth: float = math.nan
    ema_gap: float = math.nan
    steps_per_epoch: float = math.nan
    train_loss_vs_best: float = math.nan
    divergence_threshold: float = 2.0
    diverging: bool = False
    nonfinite: bool = False
    near_chance: bool = False
    lr_verdict: str = "unknown"   # too_high | too_low | ok | unknown
    lr_prior: str | None = None    # high | low: the lr itself is outside the usual range
    slow_descent: bool = False
    epochs_left: int = 0           # of the run's num_epochs, after this one
    collapsed: bool = False        # only damage: never above chance, or a loss above ln(k), at a too-high lr
    accuracy_gap: float = math.nan
    val_loss_above_best: float = math.nan
    plateau_improvement: float = math.nan
    imbalance_ratio: float = 1.0
    sampled_ratio: float = 1.0         # the imbalance the loss sees, after the sampler
    imbalance_handled: bool = False    # a sampler other than shuffle, or class weights, is on
    min_class_recall: float = math.nan
    mean_class_recall: float = math.nan
    worst_class: str | None = None
    worst_taken_for: str | None = None  # the class the worst class's val images are most often predicted as
    minority_recall: float = math.nan
    minority_class: str | None = None
    majority_recall: float = math.nan  # recall of the class with the most training images
    top_pred_share: float = math.nan   # share of val predictions that go to the most-predicted class
    top_pred_class: str | None = None
    top_pred_base: float = math.nan    # share of val images that truly are that class
    zero_recall_classes: int = 0
    at_baseline: bool = False          # predicts (almost) only one class: no better than the majority baseline
    minority_zero_epochs: int = 0      # epochs in a row the minority class had recall 0
    # the class features above read the val predictions with the training prior taken out (tau 1), where the run
    # records them (unequal shares, logit_adjustment on) and they score at least as well as the raw ones
    prior_corrected: bool = False
    minority_recalls: list[float] = field(default_factory=list, repr=False)  # per epoch, in the same view
    # 1 - train accuracy / the accuracy the model has on val, weighted as the sampler draws the classes: the
    # share of training labels the model disagrees with beyond what it gets wrong on held-out images (the
    # smallest value over the last window epochs)
    label_disagreement: float = math.nan
    mixup: bool = False
    loss_since: int = 0                # train losses of epochs up to this one are not compared with later ones
    saturated: bool = False            # at most one val image wrong (and 99% right) in each epoch of the window
    train_loss_rising: int = 0         # epochs the train loss rose in a row, where that counts (compute_features)
    lr_evidence: list[Msg] = field(default_factory=list, repr=False)
    series: Series | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able features (4 significant digits; non-finite values as strings; None left out)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("lr_evidence", "series", "minority_recalls") or v is None:
                continue
            out[f.name] = (float(f"{v:.4g}") if math.isfinite(v) else str(v)) if isinstance(v, float) else v
        return out


def _recalls(per_class: dict) -> dict[str, float]:
    out = {c: num((v or {}).get("recall")) for c, v in per_class.items() if isinstance(v, dict)}
    return {c: r for c, r in out.items() if math.isfinite(r)}


def comparable_train_loss(f: Features) -> list[tuple[int, float]]:
    """(epoch, train loss) of the epochs after ``f.loss_since``: those trained on the same loss as the last."""
    return [(r["epoch"], x) for r, x in zip(f.series.rows, f.series.train_loss) if r["epoch"] > f.loss_since]


def compute_features(history: list[dict], cfg: TrainConfig, train_counts: list[int] | None = None,
                     window: int = 3, loss_since: int = 0) -> Features:
    """The features of ``history`` (``epochs == 0`` and NaNs when no epoch is recorded yet). ``loss_since``:
    the last epoch at whose end the training loss was redefined (see tuning.actions.LOSS_KEYS)."""
    rows, window = epoch_rows(history), max(2, int(window))
    if not rows:
        nan = math.nan
        return Features(0, 0, window, cfg.monitor, len(train_counts or []), nan, nan, nan, nan, nan, nan, nan)
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    tl, ta, vl, va, last = col("train_loss"), col("train_acc"), col("val_loss"), col("val_acc"), rows[-1]
    n, counts = len(rows), list(train_counts or [])
    names = list(next((r["class_names"] for r in reversed(rows) if r["class_names"]), []))
    k = len(names) or len(counts) or len(cfg.class_weights or {})
    mon = cfg.monitor
    m_raw = col({"val_accuracy": "val_acc", "val_macro_f1": "val_f1", "val_loss": "val_loss"}[mon])
    m = [-x for x in m_raw] if mon == "val_loss" else m_raw
    f = Features(epochs=n, epoch=last["epoch"], window=window, monitor=mon, num_classes=k,
                 chance=1.0 / k if k else math.nan, train_loss=tl[-1], val_loss=vl[-1], train_accuracy=ta[-1],
                 val_accuracy=va[-1], val_macro_f1=last["val_f1"], lr=last["lr"],
                 series=Series(rows, tl, ta, vl, va, m, counts, names), loss_since=loss_since,
                 epochs_left=cfg.num_epochs - last["epoch"])
    recent = tl[-window:]
    f.loss_gap = vl[-1] - tl[-1]
    f.loss_gap_slope = slope([v - t for v, t in zip(vl[-window:], tl[-window:])])
    f.train_loss_trend, f.val_loss_trend = _rel_trend(recent), _rel_trend(vl[-window:])
    f.val_acc_over_chance = va[-1] / f.chance if k else math.nan
    f.val_loss_sign_changes, f.val_loss_diff_std = _sign_changes(vl[-2 * window:])
    f.train_loss_sign_changes, f.train_loss_diff_std = _sign_changes(tl[-2 * window:])
    ema_vl = finite(col("ema_loss")[-2 * window:])
    f.ema_val_loss_steady = len(ema_vl) >= 4 and _sign_changes(ema_vl)[0] < 2
    fv = finite(vl[-2 * window:])
    f.val_loss_diff_std_rel = f.val_loss_diff_std / (sum(fv) / len(fv)) if fv and sum(fv) > 0 else math.nan
    gm = finite(col("gn_mean"))
    f.grad_norm_mean = sum(gm) / len(gm) if gm else math.nan
    gx = finite(col("gn_max")[-window:])  # recent: one wild early epoch must not colour the verdict forever
    f.grad_norm_max = max(gx) if gx else math.nan
    gw = finite(col("gn_mean")[-window:])
    f.grad_norm_growth = gw[-1] / gw[0] if len(gw) >= 2 and gw[0] > 0 else math.nan
    f.ema_gap = last["ema_acc"] - va[-1]
    f.steps_per_epoch = last["steps"]
    same = [x for _, x in comparable_train_loss(f)]
    prev = [x for x in same[:-1] if math.isfinite(x)]
    best = min(prev) if prev else math.nan
    f.train_loss_vs_best = tl[-1] / best if prev and best > 0 and math.isfinite(tl[-1]) else math.nan
    f.divergence_threshold = cfg.intelligent_training.divergence_threshold
    nonfinite_loss = any(not math.isfinite(v) and last["has"][name] for name, v in (("train_loss", tl[-1]), ("val_loss", vl[-1])))
    f.nonfinite = nonfinite_loss
    n_val = sum(map(sum, last["cm"])) if last["cm"] else 0
    f.saturated = (mon != "val_loss" and n >= window and n_val > 0  # at most one val image wrong, and 99% right
                   and all(a >= 0.99 and (1 - a) * n_val <= 1 + 1e-6 for a in va[-window:]))
    # a rising train loss on a saturated model is a wobble on an intact model, not divergence; under Mixup/CutMix
    # an epoch's loss is against randomly mixed targets and moves 10-20% with the draws: only a blow-up counts
    f.mixup = cfg.advanced_augmentation_enabled
    f.train_loss_rising = run_up(same) if f.train_loss_trend > 0.1 and not (f.saturated or f.mixup) else 0
    f.diverging = (nonfinite_loss or last["nonfinite"] > 0
                   or f.train_loss_vs_best > f.divergence_threshold or f.train_loss_rising >= 2)
    f.near_chance = bool(k) and va[-1] <= f.chance + max(0.05, 0.25 * f.chance)
    _lr_verdict(f, cfg)
    fvl = finite(vl)
    best_vl = min(fvl) if fvl else math.nan
    f.val_loss_above_best = vl[-1] / best_vl - 1 if best_vl > 0 else math.nan
    f.accuracy_gap = ta[-1] - va[-1]
    if n > window and finite(m):
        before, rec = max(finite(m[:-window]) or [-math.inf]), max(finite(m[-window:]) or [-math.inf])
        f.plateau_improvement = ((rec - before) / max(abs(before), 1e-8)
                                 if math.isfinite(before) and math.isfinite(rec) else math.nan)
    _class_features(f, rows, counts, names, cfg.sampler)
    f.imbalance_handled = cfg.sampler != "shuffle" or cfg.use_class_weights
    if n > window:  # the first epoch's train accuracy is an average over a model that was still random
        gaps = [1 - r["train_acc"] / e if e > 0 else math.nan
                for r in rows[-window:] for e in [_expected_train_acc(r, counts, names, cfg.sampler)]]
        f.label_disagreement = min(gaps) if all(math.isfinite(g) for g in gaps) else math.nan
    return f


def _expected_train_acc(row: dict, counts: list[int], names: list[str], sampler: str) -> float:
    """The val accuracy of ``row`` re-weighted to the class mix the sampler draws for training: the training
    accuracy to expect if the training labels were as right as the validation labels."""
    recalls = _recalls(row["per_class"])
    if not recalls or len(names) != len(counts) or not all(c in recalls for c in names):
        return row["val_acc"]
    drawn = sampled_counts([max(1, c) for c in counts], sampler)
    return sum(recalls[c] * d for c, d in zip(names, drawn)) / sum(drawn)


def _lr_verdict(f: Features, cfg: TrainConfig) -> None:
    """Is the lr too high, too low or fine? Read from the train-loss curve, with the usual range as a prior."""
    s = f.series
    tl, ta, va, n = s.train_loss, s.train_acc, s.val_acc, f.epochs
    t_trend, sc_t, std_t = f.train_loss_trend, f.train_loss_sign_changes, f.train_loss_diff_std
    osc, far = sc_t >= 2 and std_t > 0, f.near_chance or ta[-1] < 0.9
    if n < 2 or not math.isfinite(t_trend):
        verdict = "too_high" if f.diverging else "unknown"
    elif (f.diverging or t_trend > 0.02 or osc or f.grad_norm_growth > 5
          or (f.grad_norm_max > HUGE_GRAD_NORM and t_trend > -0.02)):  # big gradients matter when the loss stalls
        verdict = "too_high"
    elif abs(t_trend) < FLAT_REL and far:
        verdict = "too_low"
    else:
        verdict = "ok"
    lo, hi = typical_lr(cfg)
    opt = Msg("ev.fine_tuning" if fine_tuning(cfg) else "ev.from_scratch")
    # a run that does not do well, at an lr outside the usual range, is read as the lr's fault
    poor = f.near_chance or ta[-1] < 0.9 or ta[-1] - va[-1] > 0.1
    prior = None
    args = {"lr": cfg.learning_rate, "opt": cfg.optimizer, "lo": lo, "hi": hi}
    if cfg.learning_rate > hi and (verdict in ("too_low", "unknown") or (verdict == "ok" and poor)):
        verdict, prior = "too_high", Msg("ev.lr_prior_high", args)
    elif verdict in ("ok", "unknown") and cfg.learning_rate < lo and (
            f.near_chance or not math.isfinite(t_trend) or abs(t_trend) < 0.05):
        verdict, prior = "too_low", Msg("ev.lr_prior_low", args)
    f.lr_prior = ("high" if cfg.learning_rate > hi and verdict == "too_high" else
                  "low" if cfg.learning_rate < lo and verdict == "too_low" else None)
    recent = tl[-f.window:]
    ev = {"too_low": Msg("ev.lr_low", {"pct": 100 * abs(t_trend) if math.isfinite(t_trend) else 0.0, "w": len(recent),
                                       "a": recent[0], "b": recent[-1], "lr": f.lr}),
          "too_high": Msg("ev.lr_high", {"pct": 100 * t_trend if math.isfinite(t_trend) else 0.0, "sc": sc_t,
                                         "gmax": f.grad_norm_max, "lr": f.lr})}.get(verdict)
    f.lr_evidence = [x for x in (ev, prior) if x is not None]
    # a smooth, slow descent at an lr in the lower half of the usual range: room for a larger lr
    slow = verdict == "ok" and sc_t == 0 and t_trend < 0 and cfg.learning_rate < math.sqrt(lo * hi)
    if slow and not f.diverging and not f.near_chance and n >= 2 and ta[-1] < 0.8:
        verdict, f.slow_descent = "too_low", True
        f.lr_evidence = [Msg("ev.lr_slow", {"n": n, "a": tl[0], "b": tl[-1], "lr": cfg.learning_rate})]
        if cfg.learning_rate < lo:
            f.lr_prior = "low"
    f.lr_verdict = verdict
    never_va = max(finite(va) or [math.nan])
    f.collapsed = bool(f.near_chance and verdict == "too_high" and never_va <= f.chance + max(0.05, 0.25 * f.chance))
    if f.collapsed:
        f.lr_evidence.append(Msg("ev.collapsed", {"ta": max(finite(ta) or [math.nan]), "va": never_va, "k": f.num_classes}))
    # at an lr above the usual range, a training loss above a uniform guess's (ln k) is confident nonsense on the
    # model's own training images: what those weights learned is the damage, whatever the val accuracy shows
    uniform = math.log(f.num_classes) if f.num_classes > 1 else math.inf
    if not f.collapsed and verdict == "too_high" and cfg.learning_rate > hi and tl[-1] > uniform and ta[-1] < 0.5:
        f.collapsed = True
        f.lr_evidence.append(Msg("ev.damaged", {"tl": tl[-1], "u": uniform, "k": f.num_classes, "lr": cfg.learning_rate}))


def _taken_for(row: dict, name: str) -> str | None:
    """The other class that ``name``'s validation images are most often predicted as (its confusion-matrix row)."""
    cm, names = row.get("cm") or [], row.get("class_names") or []
    if name not in names or len(cm) != len(names):
        return None
    i = names.index(name)
    others = [(n, j) for j, n in enumerate(cm[i]) if j != i and isinstance(n, (int, float)) and n > 0]
    return names[max(others)[1]] if others else None


def _corrected_view(row: dict) -> dict | None:
    """A row's prior-corrected predictions when recorded and at least as good on macro-F1 as the raw ones (the
    view the end-of-run fit would keep, as :func:`trainpilot.engine.metrics.judged_value` scores it)."""
    c = row.get("corrected")
    if not (c and isinstance(c.get("per_class"), dict) and isinstance(c.get("confusion_matrix"), list)):
        return None
    return c if num(c.get("macro_f1")) >= row["val_f1"] or not math.isfinite(row["val_f1"]) else None


def _class_view(row: dict) -> tuple[dict, list]:
    """The per-class table and confusion matrix a row's class features read: the prior-corrected ones where
    they serve (see :func:`_corrected_view`), else the raw ones."""
    c = _corrected_view(row)
    return (c["per_class"], c["confusion_matrix"]) if c else (row["per_class"], row["cm"])


def _class_features(f: Features, rows: list[dict], counts: list[int], names: list[str], sampler: str) -> None:
    """Per-class recall, the minority class, and whether predictions collapsed onto one class."""
    if counts and min(counts) >= 0 and max(counts) > 0:
        f.imbalance_ratio = max(counts) / max(1, min(counts))
        drawn = sampled_counts([max(1, c) for c in counts], sampler)
        f.sampled_ratio = max(drawn) / min(drawn)
    per_class, cm = _class_view(rows[-1])
    f.prior_corrected = _corrected_view(rows[-1]) is not None
    recalls = _recalls(per_class)
    if recalls:
        worst = min(recalls, key=recalls.get)
        f.min_class_recall, f.worst_class = recalls[worst], worst
        f.worst_taken_for = _taken_for({**rows[-1], "cm": cm}, worst)
        f.mean_class_recall = sum(recalls.values()) / len(recalls)
        f.zero_recall_classes = sum(1 for r in recalls.values() if r == 0)
        if len(names) == len(counts) and counts:
            f.minority_class = names[counts.index(min(counts))]
            f.minority_recall = recalls.get(f.minority_class, math.nan)
            f.majority_recall = recalls.get(names[counts.index(max(counts))], math.nan)
            f.minority_recalls = [_recalls(_class_view(row)[0]).get(f.minority_class, math.nan) for row in rows]
            zero = 0
            for r in reversed(f.minority_recalls):
                if r != 0:
                    break
                zero += 1
            f.minority_zero_epochs = zero
    if cm and len(cm) == len(names) and len(names) >= 2:
        total = sum(sum(r) for r in cm)
        predicted = [sum(r[j] for r in cm) for j in range(len(cm))]
        top = max(range(len(cm)), key=lambda j: predicted[j])
        if total > 0:
            f.top_pred_share, f.top_pred_class = predicted[top] / total, names[top]
            f.top_pred_base = sum(cm[top]) / total
            others = [cm[j][j] / sum(cm[j]) for j in range(len(cm)) if j != top and sum(cm[j]) > 0]
            # no better than always answering the one class: nearly every prediction is that class, more
            # often than it occurs, and the other classes are (almost) never found
            f.at_baseline = (f.top_pred_share >= MAJORITY_SHARE and f.top_pred_share > f.top_pred_base + 0.02
                             and bool(others) and sum(others) / len(others) < 0.2)
