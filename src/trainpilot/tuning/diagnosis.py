"""Diagnose a run from its whole metric history.

:func:`diagnose` computes the features once (:func:`trainpilot.tuning.features.compute_features`)
and runs an ordered registry of small detectors, one per state (diverging, noisy labels, underfitting,
collapsed to the majority class, overfitting, plateau, unstable, imbalance, one class not learned).
Each detector reads the features and the states found before it, and returns a :class:`State` with a
severity in [0, 1] and its findings as message keys (rendered in zh or en by
:mod:`trainpilot.tuning.messages`). Adding a state is adding one function here, one remedy row in the
rule table and its sentences.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from trainpilot.config import TrainConfig
from trainpilot.tuning.features import (  # noqa: F401  (re-exported: the diagnosis' public names)
    FLAT_REL, IMBALANCED, Features, comparable_train_loss, compute_features, epoch_rows, fine_tuning, finite, num,
    run_up, slope, typical_lr)
from trainpilot.tuning.messages import Msg

STATES = ("healthy", "underfitting", "majority", "overfitting", "diverging", "plateau", "unstable", "imbalance",
          "weak_class", "noisy_labels")
MIN_SEVERITY = 0.3       # weaker findings stay in the features only
PLATEAU_REL = 0.01       # relative improvement of the monitored metric over the window
STILL_LEARNING = 0.1     # a rise this large over the window: the settings work, the model is only early
COLLAPSE_RECALL = 0.2    # a class below this recall (while the mean is higher) has collapsed
# a healthy run's training accuracy (augmented, averaged over the epoch) lags its val accuracy by a few
# points; a tenth or more of training labels the model keeps rejecting, epoch after epoch, are wrong labels
NOISY_LABELS = 0.12


@dataclass
class State:
    state: str
    severity: float
    findings: list[Msg] = field(default_factory=list)
    lang: str = "en"

    @property
    def evidence(self) -> list[str]:
        """The findings as sentences in this state's language."""
        return self.render(self.lang)

    def render(self, lang: str) -> list[str]:
        return [m.render(lang) for m in self.findings]


@dataclass
class Diagnosis:
    """States sorted by severity (most severe first) and the features they were derived from."""

    states: list[State]
    features: Features
    lang: str = "en"
    window: int = 3

    @property
    def primary(self) -> str:
        return self.states[0].state if self.states else "healthy"

    def state(self, name: str) -> State | None:
        return next((s for s in self.states if s.state == name), None)

    def in_language(self, lang: str) -> "Diagnosis":
        """The same findings, worded in ``lang`` (nothing is diagnosed again)."""
        return replace(self, lang=lang, states=[replace(s, lang=lang) for s in self.states])

    def to_dict(self) -> dict[str, Any]:
        return {"primary": self.primary, "states": [{"state": s.state, "severity": round(s.severity, 3),
                                                      "evidence": s.evidence,
                                                      "findings": [m.to_dict() for m in s.findings]}
                                                     for s in self.states],
                "features": self.features.to_dict()}


Detector = Callable[[Features, dict[str, State]], "State | None"]
DETECTORS: list[tuple[str, Detector]] = []


def detector(name: str) -> Callable[[Detector], Detector]:
    """Register a detector; registration order is the order in which states are looked for."""
    def register(fn: Detector) -> Detector:
        DETECTORS.append((name, fn))
        return fn
    return register


def _q(name: str | None) -> str:
    """A class name as it appears in evidence: quoted, so names with spaces read unambiguously."""
    return json.dumps(name, ensure_ascii=False)


def _state(name: str, severity: float, findings: list[Msg]) -> State:
    return State(name, round(min(1.0, severity), 3), findings)


@detector("diverging")
def _diverging(f: Features, found: dict[str, State]) -> State | None:
    s = f.series
    last, tl, ev, sev = s.rows[-1], s.train_loss, [], 0.0
    for name, value in (("train_loss", tl[-1]), ("val_loss", s.val_loss[-1])):
        if not math.isfinite(value) and last["has"][name]:
            ev.append(Msg("ev.nonfinite_loss", {"name": name, "value": value, "epoch": f.epoch}))
            sev = 1.0
    bad, steps = last["nonfinite"], last["steps"]
    if bad > 0:
        ev.append(Msg("ev.nonfinite_steps", {"n": int(bad), "steps": int(steps) if math.isfinite(steps) else "?",
                                             "epoch": f.epoch}))
        sev = max(sev, 0.6 + 0.4 * min(1.0, bad / steps) if steps > 0 else 0.8)
    thr, same = f.divergence_threshold, comparable_train_loss(f)  # not across a change of what the loss measures
    if f.train_loss_vs_best > thr:
        best, best_ep = min((x, e) for e, x in same[:-1] if math.isfinite(x))
        ev.append(Msg("ev.blowup", {"last": tl[-1], "epoch": f.epoch, "ratio": f.train_loss_vs_best, "best": best,
                                    "best_epoch": best_ep, "thr": thr}))
        sev = max(sev, 0.7 + 0.3 * min(1.0, (f.train_loss_vs_best - thr) / thr))
    up = f.train_loss_rising
    if up >= 2:
        ev.append(Msg("ev.loss_rising", {"k": up, "a": tl[-1 - up], "b": tl[-1], "pct": 100 * f.train_loss_trend}))
        sev = max(sev, 0.6)
    return _state("diverging", sev, ev) if ev else None


@detector("noisy_labels")
def _noisy_labels(f: Features, found: dict[str, State]) -> State | None:
    """The model gets held-out images right far more often than the training images' own labels: those
    labels are wrong (a mislabelled share of the training set), not a model that cannot fit."""
    if (not f.label_disagreement >= NOISY_LABELS or f.mixup or f.near_chance or f.at_baseline
            or "diverging" in found):
        return None
    ev = [Msg("ev.noisy_labels", {"ta": f.train_accuracy, "va": f.val_accuracy, "share": f.label_disagreement,
                                  "w": f.window})]
    return _state("noisy_labels", 0.55 + min(0.3, f.label_disagreement), ev)


@detector("underfitting")
def _underfitting(f: Features, found: dict[str, State]) -> State | None:
    if "diverging" in found:  # a diverging run fits poorly because it diverges; that remedy comes first
        return None
    if "noisy_labels" in found:  # the training accuracy is low because the labels are wrong
        return None
    ta = f.train_accuracy
    if f.near_chance:
        ev = [Msg("ev.near_chance", {"va": f.val_accuracy, "chance": f.chance, "k": f.num_classes, "n": f.epochs})]
        return _state("underfitting", 0.35 if f.epochs == 1 else 0.6 + 0.1 * min(3, f.epochs - 1), ev + f.lr_evidence)
    # with no sign of a too-low lr, a metric that climbs fast says these settings work: the model is only early,
    # while more of the run lies ahead than behind it to keep climbing in (a short trial has no time to wait)
    early = (f.lr_verdict == "ok" and f.plateau_improvement >= STILL_LEARNING  # NaN (too short a history): no
             and f.epochs_left > f.epoch)
    if ((f.epochs >= 3 or f.slow_descent) and not early and f.lr_verdict in ("too_low", "ok")
            and (ta < 0.6 or (ta < 0.8 and f.slow_descent))):
        return _state("underfitting", 0.5, [Msg("ev.not_fitting", {"ta": ta, "n": f.epochs})] + f.lr_evidence)
    poor = ta < 0.9 or f.accuracy_gap > 0.1
    if f.lr_prior and poor and f.lr_evidence:
        return _state("underfitting", 0.5, list(f.lr_evidence))
    return None


@detector("majority")
def _majority(f: Features, found: dict[str, State]) -> State | None:
    """The model answers (almost) only one class on imbalanced data: accuracy looks fine, the defects are missed.

    One epoch is enough evidence when nothing handles the imbalance yet: the class counts already say why.
    Once a sampler or class weights are on, a model still at the baseline after one epoch is only early."""
    if (not f.at_baseline or (f.epochs < 2 and f.imbalance_handled) or f.imbalance_ratio < IMBALANCED
            or "diverging" in found):
        return None
    ev = [Msg("ev.majority", {"share": f.top_pred_share, "name": _q(f.top_pred_class), "base": f.top_pred_base,
                              "zero": f.zero_recall_classes, "k": f.num_classes, "f1": f.val_macro_f1})]
    if f.minority_zero_epochs >= 2:
        ev.append(Msg("ev.minority_zero", {"name": _q(f.minority_class), "n": f.minority_zero_epochs}))
    ev += _corrected_note(f)
    return _state("majority", 0.75 + 0.05 * min(3, f.minority_zero_epochs // 2), ev)


@detector("overfitting")
def _overfitting(f: Features, found: dict[str, State]) -> State | None:
    if f.near_chance or f.at_baseline:  # a model that learned nothing cannot overfit: no regularisation for it
        return None
    if f.saturated:  # (almost) every val image right for a whole window: no change could show a gain there
        return None
    s, n = f.series, f.epochs
    tl, vl, ev, sev = s.train_loss, s.val_loss, [], 0.0
    vup = run_up(vl)
    # a rise beyond noise, while the monitored metric set no new best (a val loss that rises while the
    # val accuracy climbs is the model getting bolder on what it gets right, not overfitting)
    fm = [x if math.isfinite(x) else -math.inf for x in s.monitored]
    new_best = f.monitor != "val_loss" and 0 < vup < n and max(fm[-vup:]) > max(fm[:-vup])
    if n >= 3 and vup >= 2 and tl[-1] < tl[-1 - vup] and vl[-1] > 1.05 * vl[-1 - vup] and not new_best:
        fall = (tl[-1 - vup] - tl[-1]) / tl[-1 - vup] if tl[-1 - vup] > 0 else 0.0
        ev.append(Msg("ev.val_rising", {"k": vup, "a": vl[-1 - vup], "b": vl[-1], "pct": 100 * fall}))
        sev = min(0.9, 0.45 + 0.1 * vup + min(0.2, fall))
    if n >= 3 and f.accuracy_gap > 0.15 and f.val_loss_above_best > 0.1:
        ev.append(Msg("ev.acc_gap", {"gap": f.accuracy_gap, "ta": f.train_accuracy, "va": f.val_accuracy,
                                     "pct": 100 * f.val_loss_above_best, "best": min(finite(vl))}))
        sev = max(sev, min(0.85, 0.4 + f.accuracy_gap))
    return _state("overfitting", sev, ev) if ev else None


@detector("plateau")
def _plateau(f: Features, found: dict[str, State]) -> State | None:
    if not f.plateau_improvement < PLATEAU_REL:  # NaN (too short a history) is no plateau either
        return None
    m, w = f.series.monitored, f.window
    before, rec = max(finite(m[:-w])), max(finite(m[-w:]))
    sign = -1 if f.monitor == "val_loss" else 1
    converged = f.monitor != "val_loss" and rec >= 0.98
    return _state("plateau", 0.2 if converged else (0.5 if f.plateau_improvement <= 0 else 0.4),
                  [Msg("ev.plateau", {"metric": f.monitor, "pct": 100 * f.plateau_improvement, "w": w,
                                      "recent": sign * rec, "before": sign * before})])


@detector("unstable")
def _unstable(f: Features, found: dict[str, State]) -> State | None:
    if f.at_baseline or f.saturated:  # the val loss of a saturated model wobbles at a low level; nothing to win
        return None
    s, ev, sev = f.series, [], 0.0
    fv = finite(s.val_loss[-2 * f.window:])
    sc, std, rel_std = f.val_loss_sign_changes, f.val_loss_diff_std, f.val_loss_diff_std_rel
    net = abs(fv[-1] - fv[0]) / (len(fv) - 1) if len(fv) > 1 else 0.0
    # early training oscillates too while the metric climbs: only an oscillation without progress is instability
    stuck = f.plateau_improvement < PLATEAU_REL
    # the EMA weights (best.pt takes them when they score better) average out the raw weights' jitter: a val
    # loss that wobbles only for the raw weights is the position in the valley, not an optimizer to calm down
    if (len(fv) >= 4 and sc >= 2 and sc >= 0.6 * (len(fv) - 2) and rel_std > 0.1 and std > net and stuck
            and not f.ema_val_loss_steady):
        ev.append(Msg("ev.oscillation", {"sc": sc, "m": len(fv), "std": std, "rel": 100 * rel_std}))
        sev = min(0.8, 0.5 + 0.1 * (sc - 2))
    if f.grad_norm_growth > 5:
        gw = finite([r["gn_mean"] for r in s.rows][-f.window:])
        ev.append(Msg("ev.grad_growth", {"g": f.grad_norm_growth, "w": len(gw), "a": gw[0], "b": gw[-1]}))
        sev = max(sev, 0.5)
    return _state("unstable", sev, ev) if ev else None


def _class_collapse(f: Features) -> list[Msg]:
    """One class (almost) never found while the others are: its recall and the mean recall."""
    if f.min_class_recall < COLLAPSE_RECALL and f.mean_class_recall >= f.min_class_recall + 0.2:
        return [Msg("ev.class_collapse", {"name": _q(f.worst_class), "r": f.min_class_recall, "mean": f.mean_class_recall})]
    return []


def _corrected_note(f: Features) -> list[Msg]:
    """Say so when the class recalls were read with the training prior taken out (see Features.prior_corrected)."""
    return [Msg("ev.prior_corrected", {})] if f.prior_corrected else []


@detector("imbalance")
def _imbalance(f: Features, found: dict[str, State]) -> State | None:
    if not math.isfinite(f.min_class_recall) or f.imbalance_ratio < IMBALANCED:
        return None  # on balanced counts a class that is not found is no imbalance (see weak_class)
    ev = _class_collapse(f)
    sev = 0.7 if ev else 0.0
    counts, names = f.series.counts, f.series.names
    if f.minority_class is not None:
        r = f.minority_recall
        if r < 0.5 and f.mean_class_recall > r:
            big = names[counts.index(max(counts))]
            ev.append(Msg("ev.minority", {"ratio": f.imbalance_ratio, "big": _q(big), "nb": max(counts),
                                          "small": _q(f.minority_class), "ns": min(counts), "r": r}))
            sev = max(sev + 0.1 if sev else 0.55, 0.55)
    if ev and f.minority_zero_epochs >= 2:
        ev.append(Msg("ev.minority_zero", {"name": _q(f.minority_class), "n": f.minority_zero_epochs}))
    ev += _corrected_note(f) if ev else []
    return _state("imbalance", sev * (0.5 if f.near_chance else 1.0), ev) if ev else None


@detector("weak_class")
def _weak_class(f: Features, found: dict[str, State]) -> State | None:
    """One class is not being learned although the training counts are balanced: neither class weights nor
    a sampler would show it more often, so this is no imbalance (its images, or their labels, are the lead)."""
    if not math.isfinite(f.min_class_recall) or f.imbalance_ratio >= IMBALANCED:
        return None
    ev = _class_collapse(f)
    ev += _corrected_note(f) if ev else []
    return _state("weak_class", 0.5 * (0.5 if f.near_chance else 1.0), ev) if ev else None


def diagnose(history: list[dict], cfg: TrainConfig, train_counts: list[int] | None = None,
             window: int = 3, lang: str = "en", loss_since: int = 0) -> Diagnosis:
    """Diagnose the run from every epoch in ``history``; ``window`` epochs define "recent"; train losses up to
    epoch ``loss_since`` (a change of what the loss measures) are not compared with later ones."""
    f = compute_features(history, cfg, train_counts, window, loss_since)
    if f.epochs == 0:
        return Diagnosis([State("healthy", 0.0, [Msg("ev.no_history")], lang)], f, lang, f.window)
    found: dict[str, State] = {}
    for name, detect in DETECTORS:
        state = detect(f, found)
        if state is not None:
            found[name] = state
    states = sorted((replace(s, lang=lang) for s in found.values() if s.severity >= MIN_SEVERITY),
                    key=lambda s: -s.severity)
    if not states:
        m = f.series.monitored
        m_raw = [-x for x in m] if f.monitor == "val_loss" else m
        a = m_raw[-f.window] if f.epochs >= f.window else m_raw[0]
        states = [State("healthy", 0.0, [Msg("ev.healthy", {"metric": f.monitor, "a": a, "b": m_raw[-1],
                                                            "w": min(f.epochs, f.window)})], lang)]
    return Diagnosis(states, f, lang, f.window)


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
