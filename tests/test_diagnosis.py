"""diagnose() on scripted metric histories, one per state (pure Python, no training)."""

from __future__ import annotations

import json
import math
import re

import pytest

from trainpilot.config import build_config
from trainpilot.tuning.diagnosis import diagnose, format_history_table

CLASSES = ["ants", "bees", "wasps", "flies"]
NUMBER = re.compile(r"\d")


def make_history(tl, vl, ta, va, *, lr=1e-3, recalls=None, grad=None, nonfinite=None, classes=CLASSES):
    """metrics.jsonl records (train + val per epoch) from per-epoch lists."""
    out = []
    for i, (t_loss, v_loss, t_acc, v_acc) in enumerate(zip(tl, vl, ta, va)):
        epoch = i + 1
        out.append({"epoch": epoch, "phase": "train", "loss": t_loss, "accuracy": t_acc, "lr": lr,
                    "images_per_s": 500.0, "epoch_seconds": 2.0, "grad_norm_mean": grad[i] if grad else 1.0,
                    "grad_norm_max": (grad[i] * 3) if grad else 3.0,
                    "nonfinite_steps": nonfinite[i] if nonfinite else 0, "steps": 10})
        rec = recalls[i] if recalls else [v_acc] * len(classes)
        per = {c: {"precision": r, "recall": r, "f1": r, "support": 10} for c, r in zip(classes, rec)}
        out.append({"epoch": epoch, "phase": "val", "loss": v_loss, "accuracy": v_acc, "macro_f1": v_acc,
                    "precision": v_acc, "recall": v_acc, "per_class": per, "confusion_matrix": [],
                    "class_names": classes, "train_loss": t_loss, "train_accuracy": t_acc, "val_loss": v_loss,
                    "val_accuracy": v_acc, "val_macro_f1": v_acc, "lr": lr, "ema_loss": None,
                    "ema_accuracy": None, "ema_macro_f1": None})
    return out


CFG = build_config({})
COUNTS = [100, 100, 100, 100]

SCENARIOS = {
    "healthy": make_history([1.2, 0.9, 0.7, 0.55, 0.45], [1.1, 0.9, 0.75, 0.65, 0.58],
                            [0.5, 0.65, 0.75, 0.82, 0.86], [0.55, 0.68, 0.76, 0.8, 0.83]),
    "underfitting_flat": make_history([1.386, 1.3855, 1.385, 1.3848], [1.386, 1.386, 1.3858, 1.3857],
                                      [0.25, 0.26, 0.25, 0.26], [0.25, 0.24, 0.25, 0.25], lr=1e-6),
    "underfitting_high_lr": make_history([1.5, 1.9, 1.6, 2.0], [1.6, 1.9, 1.7, 2.1], [0.26, 0.24, 0.25, 0.23],
                                         [0.25, 0.25, 0.24, 0.25], lr=0.5, grad=[50, 150, 120, 300]),
    "overfitting": make_history([1.0, 0.7, 0.5, 0.35, 0.25, 0.18], [0.9, 0.75, 0.7, 0.74, 0.8, 0.88],
                                [0.6, 0.75, 0.83, 0.9, 0.94, 0.97], [0.62, 0.7, 0.72, 0.71, 0.7, 0.69]),
    "diverging_nan": make_history([1.0, 0.8, math.nan], [0.9, 0.8, "nan"], [0.5, 0.6, 0.3], [0.5, 0.6, 0.25],
                                  nonfinite=[0, 0, 7]),
    "diverging_blowup": make_history([1.0, 0.6, 0.5, 1.2], [0.9, 0.6, 0.55, 1.1], [0.6, 0.75, 0.8, 0.5],
                                     [0.6, 0.74, 0.78, 0.5]),
    "plateau": make_history([0.6, 0.45, 0.4, 0.39, 0.385, 0.383], [0.7, 0.5, 0.45, 0.448, 0.447, 0.449],
                            [0.75, 0.83, 0.86, 0.87, 0.872, 0.873], [0.7, 0.8, 0.85, 0.851, 0.852, 0.85]),
    "unstable": make_history([1.0, 0.9, 0.8, 0.72, 0.65, 0.6], [1.0, 0.7, 0.9, 0.6, 0.85, 0.55],
                             [0.55, 0.6, 0.64, 0.68, 0.7, 0.72], [0.5, 0.6, 0.55, 0.6, 0.56, 0.59]),
    "imbalance": make_history([1.2, 0.9, 0.7, 0.55, 0.45], [1.1, 0.9, 0.75, 0.65, 0.58],
                              [0.5, 0.65, 0.75, 0.82, 0.86], [0.55, 0.68, 0.76, 0.8, 0.83],
                              recalls=[[0.6, 0.6, 0.6, 0.1]] * 4 + [[0.95, 0.92, 0.9, 0.05]]),
}
EXPECTED = {"healthy": "healthy", "underfitting_flat": "underfitting", "underfitting_high_lr": "underfitting",
            "overfitting": "overfitting", "diverging_nan": "diverging", "diverging_blowup": "diverging",
            "plateau": "plateau", "unstable": "unstable", "imbalance": "imbalance"}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_primary_state_and_numeric_evidence(name):
    counts = [500, 480, 450, 40] if name == "imbalance" else COUNTS
    d = diagnose(SCENARIOS[name], CFG, counts)
    assert d.primary == EXPECTED[name], d.to_dict()
    top = d.states[0]
    assert 0.0 <= top.severity <= 1.0
    assert top.evidence and all(NUMBER.search(e) for e in top.evidence), top.evidence
    json.dumps(d.to_dict(), allow_nan=False)  # features are JSON-safe (NaN/inf as strings)


def test_overfitting_evidence_names_the_trend():
    d = diagnose(SCENARIOS["overfitting"], CFG, COUNTS)
    ev = d.state("overfitting").evidence[0]
    assert "val_loss rose 3 epochs in a row" in ev and "train_loss fell 64%" in ev
    assert d.features.loss_gap_slope > 0


def test_lr_verdicts_from_the_loss_curve():
    assert diagnose(SCENARIOS["underfitting_flat"], CFG, COUNTS).features.lr_verdict == "too_low"
    d = diagnose(SCENARIOS["underfitting_high_lr"], CFG, COUNTS)
    assert d.features.lr_verdict == "too_high"
    assert any("too high" in e for e in d.state("underfitting").evidence)


def test_nan_divergence_is_maximal_and_quotes_the_steps():
    d = diagnose(SCENARIOS["diverging_nan"], CFG, COUNTS)
    st = d.state("diverging")
    assert st.severity == 1.0
    assert any("7 of 10 training steps" in e for e in st.evidence)
    assert d.to_dict()["features"]["train_loss"] == "nan"


def test_blowup_quotes_the_ratio_to_the_best_loss():
    ev = diagnose(SCENARIOS["diverging_blowup"], CFG, COUNTS).state("diverging").evidence
    assert any("2.40x its best 0.5" in e for e in ev), ev


def test_imbalance_names_the_collapsed_class_and_ratio():
    d = diagnose(SCENARIOS["imbalance"], CFG, [500, 480, 450, 40])
    ev = " ".join(d.state("imbalance").evidence)
    assert '"flies"' in ev and "recall 0.05" in ev and "12.5:1" in ev
    assert d.features.imbalance_ratio == 12.5


def test_one_epoch_and_empty_histories_are_handled():
    one = make_history([1.3], [1.2], [0.4], [0.45])
    d = diagnose(one, CFG, COUNTS)
    assert d.primary == "healthy" and d.features.epochs == 1
    assert diagnose([], CFG, COUNTS).primary == "healthy"
    at_chance = diagnose(make_history([1.386], [1.386], [0.25], [0.25]), CFG, COUNTS)
    assert at_chance.state("underfitting").severity < 0.5  # one epoch is weak evidence


def test_zh_evidence_and_history_table():
    d = diagnose(SCENARIOS["overfitting"], CFG, COUNTS, lang="zh")
    assert "连续 3 轮上升" in d.state("overfitting").evidence[0]
    table = format_history_table(SCENARIOS["diverging_nan"], "zh").splitlines()
    assert table[0].startswith("轮次 | 训练损失") and len(table) == 4 and "nan" in table[-1]
    en = format_history_table(make_history([1.0] * 50, [1.0] * 50, [0.5] * 50, [0.5] * 50), "en", max_rows=10)
    assert en.splitlines()[0] == "epoch | train_loss | train_acc | val_loss | val_acc | val_f1 | lr"
    assert "epochs omitted" in en and len(en.splitlines()) == 12


def test_an_lr_outside_the_usual_range_is_blamed_for_a_poor_run():
    # the loss falls, but the run does poorly (val far below train): at lr 0.01 with AdamW that is the lr
    poor = make_history([1.6, 1.3, 1.1, 1.0], [1.7, 1.5, 1.6, 1.4], [0.35, 0.5, 0.6, 0.66],
                        [0.3, 0.4, 0.35, 0.45], lr=0.01)
    high = diagnose(poor, build_config({"learning_rate": 0.01}), COUNTS)
    assert high.features.lr_prior == "high" and high.features.lr_verdict == "too_high"
    assert high.state("underfitting") and any("usual range" in e for e in high.state("underfitting").evidence)
    usual = diagnose(poor, build_config({"learning_rate": 2e-3}), COUNTS)
    assert usual.features.lr_prior is None
    low = diagnose(SCENARIOS["underfitting_flat"], build_config({"learning_rate": 1e-6}), COUNTS)
    assert low.features.lr_prior == "low"


def test_a_run_that_never_rose_above_chance_at_a_high_lr_is_collapsed():
    d = diagnose(SCENARIOS["underfitting_high_lr"], CFG, COUNTS)
    assert d.features.collapsed and any("nothing worth keeping" in e for e in d.state("underfitting").evidence)
    assert not diagnose(SCENARIOS["underfitting_flat"], CFG, COUNTS).features.collapsed  # too low, not damaged
    assert not diagnose(SCENARIOS["healthy"], CFG, COUNTS).features.collapsed


def test_early_oscillation_while_the_metric_climbs_is_not_instability():
    climbing = make_history([1.0, 0.9, 0.8, 0.72, 0.65, 0.6], [1.0, 0.7, 0.9, 0.6, 0.85, 0.55],
                            [0.55, 0.6, 0.64, 0.68, 0.7, 0.72], [0.5, 0.6, 0.55, 0.65, 0.58, 0.68])
    assert not diagnose(climbing, CFG, COUNTS).state("unstable")
    small_rise = make_history([1.0, 0.7, 0.5, 0.45, 0.44], [0.9, 0.6, 0.5, 0.51, 0.52],
                              [0.6, 0.75, 0.83, 0.85, 0.86], [0.62, 0.72, 0.8, 0.8, 0.8])
    assert not diagnose(small_rise, CFG, COUNTS).state("overfitting")  # +4% val loss over 2 epochs is noise


def test_a_val_loss_that_wobbles_only_for_the_raw_weights_is_not_instability():
    """The healthy seed-0 pathology run: the raw weights' val loss went up and down while the EMA's fell
    steadily; an lr cut, then gradient accumulation, were tried there and both rolled back."""
    wobbly = SCENARIOS["unstable"]
    assert diagnose(wobbly, CFG, COUNTS).state("unstable")
    ema_losses = iter([0.95, 0.85, 0.75, 0.68, 0.62, 0.58])
    smoothed = [{**r, "ema_loss": next(ema_losses)} if r["phase"] == "val" else r for r in wobbly]
    assert not diagnose(smoothed, CFG, COUNTS).state("unstable")
    ema_losses = iter([0.95, 0.75, 0.85, 0.65, 0.8, 0.6])  # the EMA wobbles too: instability stands
    both = [{**r, "ema_loss": next(ema_losses)} if r["phase"] == "val" else r for r in wobbly]
    assert diagnose(both, CFG, COUNTS).state("unstable")


def test_a_val_loss_rise_while_val_accuracy_sets_a_new_best_is_not_overfitting():
    """After a warm restart the val loss can rise while the val accuracy climbs: bolder, not overfit."""
    bolder = make_history([1.6, 1.3, 1.4, 1.0, 0.87, 0.85], [1.4, 1.2, 0.82, 0.84, 0.91, 0.92],
                          [0.5, 0.55, 0.64, 0.72, 0.71, 0.72], [0.55, 0.6, 0.79, 0.71, 0.82, 0.83])
    assert not diagnose(bolder, CFG, COUNTS).state("overfitting")
    worse = make_history([1.6, 1.3, 1.4, 1.0, 0.87, 0.85], [1.4, 1.2, 0.82, 0.84, 0.91, 0.92],
                         [0.5, 0.55, 0.64, 0.72, 0.71, 0.72], [0.55, 0.6, 0.79, 0.71, 0.74, 0.75])
    assert diagnose(worse, CFG, COUNTS).state("overfitting")


def _collapsed_history(epochs=6):
    """Train accuracy climbs and val loss rises (it would read as overfitting), but every val image is called ants."""
    h = make_history([1.0, 0.8, 0.6, 0.45, 0.35, 0.3][:epochs], [0.9, 0.85, 0.88, 0.95, 1.05, 1.2][:epochs],
                     [0.8, 0.84, 0.88, 0.92, 0.94, 0.95][:epochs], [0.57] * epochs,
                     recalls=[[1.0, 0.0, 0.05, 0.0]] * epochs)
    for r in h:
        if r["phase"] == "val":
            r["confusion_matrix"] = [[40, 0, 0, 0], [10, 0, 0, 0], [19, 0, 1, 0], [10, 0, 0, 0]]
            r["macro_f1"] = r["val_macro_f1"] = 0.2
    return h


def test_a_model_that_predicts_only_the_majority_class_is_diagnosed_as_such():
    d = diagnose(_collapsed_history(), CFG, [400, 30, 20, 10])
    assert d.primary == "majority", d.to_dict()
    ev = " ".join(d.state("majority").evidence)
    assert "99% of the validation images are predicted as \"ants\"" in ev and "recall 0 for 6 epochs" in ev
    assert d.features.at_baseline and d.features.minority_zero_epochs == 6
    assert not d.state("overfitting") and not d.state("unstable")  # nothing learned: no regularisation verdicts
    zh = d.in_language("zh").state("majority").evidence[0]
    assert "被预测为 \"ants\"" in zh
    # the same predictions on balanced counts are plain underfitting territory, not a majority collapse
    assert not diagnose(_collapsed_history(), CFG, COUNTS).state("majority")
    healthy = diagnose(SCENARIOS["healthy"], CFG, COUNTS)
    assert not healthy.features.at_baseline and healthy.features.minority_zero_epochs == 0


def test_one_epoch_at_the_majority_baseline_is_a_collapse_only_while_nothing_balances_the_counts():
    counts = [400, 30, 20, 10]
    assert diagnose(_collapsed_history(1), CFG, counts).state("majority") is not None
    for handled in ({"sampler": "sqrt"}, {"use_class_weights": True}):  # a remedy already on: one epoch is early
        d = diagnose(_collapsed_history(1), build_config(handled), counts)
        assert d.state("majority") is None and d.features.imbalance_handled
    assert diagnose(_collapsed_history(2), build_config({"sampler": "sqrt"}), counts).state("majority") is not None


def _with_prior_corrected(history: list[dict], recalls: list[float], cm: list[list[int]]) -> list[dict]:
    for r in history:
        if r["phase"] == "val":
            r["prior_corrected"] = {"accuracy": 0.8, "macro_f1": 0.8, "confusion_matrix": cm,
                                    "per_class": {c: {"recall": x} for c, x in zip(CLASSES, recalls)}}
    return history


def test_the_class_features_read_the_scores_with_the_training_prior_taken_out():
    """A model whose raw argmax finds no minority image, while its prior-corrected scores (what best.pt's logit
    adjustment answers) find them: no collapse and no imbalance to remedy; still collapsed after the
    correction: a collapse, whose evidence says the recalls were read that way."""
    counts = [400, 30, 20, 10]
    found = [[38, 1, 1, 0], [1, 8, 1, 0], [2, 1, 16, 1], [1, 0, 1, 8]]
    d = diagnose(_with_prior_corrected(_collapsed_history(), [0.95, 0.8, 0.8, 0.8], found), CFG, counts)
    assert d.features.prior_corrected and not d.features.at_baseline and d.features.minority_recall == 0.8
    assert d.state("majority") is None and d.state("imbalance") is None, d.to_dict()
    still = [[40, 0, 0, 0], [10, 0, 0, 0], [19, 0, 1, 0], [10, 0, 0, 0]]
    d = diagnose(_with_prior_corrected(_collapsed_history(), [1.0, 0.0, 0.05, 0.0], still), CFG, counts)
    assert d.primary == "majority" and d.features.minority_zero_epochs == 6
    assert "training class prior taken out" in " ".join(d.state("majority").evidence)
    assert "扣除训练类别先验" in " ".join(d.in_language("zh").state("majority").evidence)


def test_a_low_training_accuracy_is_no_underfitting_while_the_val_metric_still_climbs_fast():
    """Train accuracy 0.55 at epoch 5 reads as "not fitting", unless the monitored metric has just risen
    steeply: those settings are working, and raising the lr there only shakes a model that is learning."""
    tl, vl = [1.6, 1.5, 1.4, 1.3, 1.25], [1.6, 1.5, 1.35, 1.2, 1.1]
    early = make_history(tl, vl, [0.30, 0.35, 0.45, 0.5, 0.55], [0.17, 0.17, 0.24, 0.45, 0.55])
    stuck = make_history(tl, vl, [0.30, 0.35, 0.45, 0.5, 0.55], [0.45, 0.47, 0.48, 0.49, 0.5])
    assert diagnose(early, CFG, COUNTS).state("underfitting") is None
    assert diagnose(early, CFG, COUNTS).features.plateau_improvement > 1
    assert diagnose(stuck, CFG, COUNTS).state("underfitting") is not None


def test_a_climbing_metric_excuses_a_low_training_accuracy_only_in_the_first_half_of_the_run():
    """The same epoch-5 history: in a 40-epoch run the model is early and has time; in an 8-epoch trial
    (3 epochs left) it has not, so the low training accuracy is read as underfitting after all."""
    tl, vl = [1.6, 1.5, 1.4, 1.3, 1.25], [1.6, 1.5, 1.35, 1.2, 1.1]
    early = make_history(tl, vl, [0.30, 0.35, 0.45, 0.5, 0.55], [0.17, 0.17, 0.24, 0.45, 0.55])
    short = build_config({"num_epochs": 8})
    assert diagnose(early, CFG, COUNTS).state("underfitting") is None
    d = diagnose(early, short, COUNTS)
    assert d.features.epochs_left == 3 and d.state("underfitting") is not None
    assert diagnose(early, build_config({"num_epochs": 11}), COUNTS).state("underfitting") is None  # 6 left


def test_a_slow_smooth_descent_at_a_low_lr_is_underfitting_from_the_second_epoch():
    """The seed's config on neu-cls (lr 1e-4, 10 optimizer steps an epoch), measured: after two epochs the
    loss has fallen by a tenth an epoch at an lr in the lower half of the usual range. Waiting for a third
    epoch only spends one more of a fixed budget at that lr. The same curve at the default lr is fine."""
    tl, vl, ta, va = [1.958, 1.769], [1.9, 1.7], [0.29, 0.39], [0.19, 0.44]
    low = build_config({"learning_rate": 1e-4})
    d = diagnose(make_history(tl, vl, ta, va, lr=1e-4, classes=SIX), low, [240] * 6)
    assert d.features.slow_descent and d.state("underfitting") is not None
    assert any("0.0001" in e for e in d.state("underfitting").evidence)
    assert diagnose(make_history(tl, vl, ta, va, lr=2e-3, classes=SIX), CFG, [240] * 6).state("underfitting") is None
    assert not diagnose(make_history(tl[:1], vl[:1], ta[:1], va[:1], lr=1e-4, classes=SIX), low,
                        [240] * 6).features.slow_descent  # one epoch has no descent to read


def test_a_training_loss_above_a_uniform_guess_at_a_too_high_lr_marks_the_weights_as_damage():
    """lr x50 on neu-cls, measured (seed 0): after the first x10 cut the run trained one epoch at lr 0.01, still
    above the usual range, to a training loss of 11.8 (a uniform guess over 6 classes: 1.79) at val accuracy
    0.32. Those weights are confidently wrong on their own training images: the cut that follows resets them.
    The same epoch at an lr inside the usual range, or with a loss below a uniform guess's, keeps its weights."""
    def features(lr, loss):
        cfg = build_config({"learning_rate": lr})
        return diagnose(make_history([loss], [9.0], [0.29], [0.32], lr=lr, classes=SIX), cfg, [240] * 6).features
    hit = features(0.01, 11.845)
    assert hit.collapsed and hit.lr_verdict == "too_high"
    assert any(m.key == "ev.damaged" for m in hit.lr_evidence)
    assert "1.79" in next(m for m in hit.lr_evidence if m.key == "ev.damaged").render("en")
    assert not features(2e-3, 11.845).collapsed and not features(0.01, 1.5).collapsed



# train/val accuracy per epoch, measured on neu-cls (bench/pathologies.py, seed 42, 15 epochs, controller off)
FLIPPED = ("0.31/0.41 0.40/0.46 0.44/0.65 0.52/0.79 0.57/0.76 0.59/0.78 0.59/0.79 0.59/0.83 0.62/0.84 0.62/0.85 "
           "0.65/0.84 0.65/0.86 0.66/0.86 0.66/0.86 0.67/0.86")  # a fifth of the training labels flipped
HEALTHY = ("0.44/0.31 0.58/0.74 0.67/0.82 0.77/0.84 0.78/0.82 0.81/0.86 0.84/0.88 0.85/0.89 0.86/0.93 0.87/0.93 "
           "0.88/0.92 0.87/0.93 0.89/0.93 0.90/0.94 0.90/0.92")
SIX = ["a", "b", "c", "d", "e", "f"]


def measured(curve: str, epochs: int, **kw):
    ta, va = zip(*(map(float, p.split("/")) for p in curve.split()[:epochs]))
    tl = [1.6 - 0.9 * (1 - 0.8 ** i) for i in range(epochs)]
    vl = [1.5 - 1.0 * (1 - 0.8 ** i) for i in range(epochs)]
    return make_history(tl, vl, list(ta), list(va), classes=SIX, **kw)


def test_mislabelled_training_images_read_as_noisy_labels_not_underfitting():
    for epochs in range(5, 16):
        d = diagnose(measured(FLIPPED, epochs), CFG, [210] * 6)
        assert d.primary == "noisy_labels" and d.state("underfitting") is None, (epochs, d.to_dict())
        assert 0.2 <= d.features.label_disagreement <= 0.3
    (ev,) = d.state("noisy_labels").evidence
    assert "0.670" in ev and "0.860" in ev and "22%" in ev and "mislabelled" in ev
    assert "标错" in d.in_language("zh").state("noisy_labels").evidence[0]
    gap = measured(FLIPPED, 8)
    gap[-2]["accuracy"] = gap[-1]["train_accuracy"] = "nan"  # epoch 8's train accuracy unreadable: not concluded
    assert diagnose(gap, CFG, [210] * 6).state("noisy_labels") is None
    # at epoch 3 the low train accuracy is still read as underfitting: one epoch of it is no pattern yet
    assert diagnose(measured(FLIPPED, 3), CFG, [210] * 6).state("noisy_labels") is None


def test_a_healthy_run_never_reads_as_noisy_labels():
    """Augmentation keeps a healthy run's train accuracy a few points below its val accuracy, and early on
    the epoch's average lags far behind: neither is a labelling problem."""
    for epochs in range(2, 16):
        d = diagnose(measured(HEALTHY, epochs), CFG, [210] * 6)
        assert d.state("noisy_labels") is None, (epochs, d.to_dict())
        assert epochs <= 3 or d.features.label_disagreement < 0.1, epochs  # epochs 1-3: not measured yet
    mixed = build_config({"advanced_augmentation_enabled": True})  # mixup: train accuracy on mixed images means little
    assert diagnose(measured(FLIPPED, 10), mixed, [210] * 6).state("noisy_labels") is None


def test_noisy_labels_are_judged_on_the_class_mix_the_sampler_draws():
    """Balanced sampling trains on a mix rich in hard minority images, while val accuracy is mostly the easy
    majority class: the train accuracy to expect is val recall per class, weighted as the sampler draws."""
    counts, recalls = [700, 20, 20, 20, 20, 20], [0.97, 0.6, 0.6, 0.6, 0.6, 0.6]
    balanced = build_config({"sampler": "balanced"})
    drawn = 0.97 / 6 + 0.6 * 5 / 6  # 0.66: what a balanced draw of these classes scores
    hist = make_history([1.0 - 0.05 * i for i in range(8)], [0.9 - 0.04 * i for i in range(8)], [drawn - 0.02] * 8,
                        [0.93] * 8, recalls=[recalls] * 8, classes=SIX)
    d = diagnose(hist, balanced, counts)
    assert d.state("noisy_labels") is None and d.features.label_disagreement < 0.05, d.to_dict()
    # the same curves with the shuffle sampler: training draws as val does, so 0.64 against 0.93 is disagreement
    assert diagnose(hist, CFG, counts).state("noisy_labels") is not None


def _with_val_images(history: list[dict], per_class: int = 100) -> list[dict]:
    """The val records with a confusion matrix of ``per_class`` images per class (the val set's size)."""
    for r in history:
        if r["phase"] == "val":
            r["confusion_matrix"] = [[per_class if i == j else 0 for j in range(len(CLASSES))] for i in range(len(CLASSES))]
    return history


def test_a_saturated_model_gets_no_overfitting_instability_or_rising_loss_verdict():
    """(Almost) every val image right for a whole window: a rising or wobbling val loss, or a train loss
    wobble, has nothing a change could win on the monitored metric."""
    tl, vl = [1.0, 0.6, 0.5, 0.48, 0.47, 0.46], [0.3, 0.05, 0.09, 0.06, 0.10, 0.12]
    ta = [0.8, 0.95, 0.98, 0.99, 0.99, 0.99]
    perfect = diagnose(_with_val_images(make_history(tl, vl, ta, [0.9, 1.0, 1.0, 1.0, 1.0, 1.0])), CFG, COUNTS)
    assert perfect.features.saturated and perfect.primary == "healthy", perfect.to_dict()
    one_off = make_history(tl, vl, ta, [0.9, 1.0, 0.9975, 1.0, 0.9975, 1.0])  # 1 of the 400 val images wrong
    assert diagnose(_with_val_images(one_off), CFG, COUNTS).primary == "healthy"
    one_of_40 = make_history(tl, vl, ta, [0.9, 1.0, 0.975, 1.0, 0.975, 1.0])  # 1 of 40 wrong is 97.5%: not saturated
    assert not diagnose(_with_val_images(one_of_40, per_class=10), CFG, COUNTS).features.saturated
    short = diagnose(_with_val_images(make_history(tl, vl, ta, [0.9, 0.97, 0.96, 0.97, 0.965, 0.96])), CFG, COUNTS)
    assert not short.features.saturated and short.state("overfitting"), short.to_dict()
    wobble = [1.0, 0.6, 0.5, 0.46, 0.45, 0.55, 0.66]  # rising 2 epochs, +18%/epoch
    assert diagnose(make_history(wobble, vl + [0.12], ta + [0.99], [0.9] + [0.97] * 6), CFG, COUNTS).state("diverging")
    assert not diagnose(_with_val_images(make_history(wobble, vl + [0.12], ta + [0.99], [0.9] + [1.0] * 6)),
                        CFG, COUNTS).state("diverging")


def test_train_losses_under_a_changed_loss_are_not_compared_with_the_old_ones():
    """Mixup turned on after epoch 4 doubles a converged model's train loss: that is no blow-up."""
    tl = [1.0, 0.6, 0.5, 0.46, 0.9, 0.8, 0.97, 0.95]
    h = make_history(tl, [0.5, 0.4, 0.35, 0.33, 0.34, 0.33, 0.33, 0.34], [0.7, 0.85, 0.9, 0.92, 0.6, 0.65, 0.62, 0.6],
                     [0.8, 0.85, 0.88, 0.9, 0.9, 0.91, 0.9, 0.9])
    before = diagnose(h, CFG, COUNTS)
    assert before.state("diverging") and before.features.train_loss_vs_best > 2
    after = diagnose(h, CFG, COUNTS, loss_since=4)
    assert not after.state("diverging") and after.features.train_loss_vs_best == pytest.approx(0.95 / 0.8)
    real = diagnose(make_history(tl[:-1] + [2.0], *([x] * 8 for x in (0.4, 0.9, 0.9))), CFG, COUNTS, loss_since=4)
    assert real.state("diverging")  # a blow-up within the new loss still counts (2.0 = 2.5x its best 0.8)


def test_a_mixup_train_loss_that_rises_within_its_noise_is_no_divergence():
    """Under Mixup/CutMix an epoch's train loss is against randomly mixed targets: a 2-epoch rise that stays
    below where the mixed loss started (ok-majority, 40 epochs: mixup from epoch 6, val loss fine) is no
    divergence, while the same curve without mixup, or a blow-up under it, still is."""
    tl = [1.65, 1.38, 1.01, 0.91, 0.87, 0.78, 1.24, 1.16, 1.01, 0.97, 1.02, 1.2]
    vl = [0.86, 0.83, 1.02, 0.57, 0.57, 0.8, 0.68, 0.52, 0.54, 0.52, 0.47, 0.62]
    ta = [0.43, 0.56, 0.75, 0.79, 0.81, 0.86, 0.54, 0.52, 0.73, 0.49, 0.66, 0.57]
    va = [0.71, 0.77, 0.76, 0.84, 0.81, 0.78, 0.8, 0.9, 0.89, 0.89, 0.9, 0.87]
    mixup = build_config({"advanced_augmentation_enabled": True})
    d = diagnose(make_history(tl, vl, ta, va), mixup, COUNTS, loss_since=6)
    assert not d.state("diverging") and d.features.train_loss_rising == 0, d.to_dict()
    assert diagnose(make_history(tl, vl, ta, va), CFG, COUNTS, loss_since=6).state("diverging")
    blowup = diagnose(make_history(tl[:-1] + [2.1], vl, ta, va), mixup, COUNTS, loss_since=6)
    assert blowup.state("diverging")  # 2.1 is 2.2x the mixed loss's best (0.97)


def test_a_class_not_learned_on_balanced_counts_is_no_imbalance():
    history = [dict(r) for r in SCENARIOS["imbalance"]]
    history[-1] = {**history[-1], "confusion_matrix": [[10, 0, 0, 0], [0, 9, 1, 0], [0, 1, 9, 0], [0, 1, 8, 1]]}
    d = diagnose(history, CFG, COUNTS)  # the same recalls ("flies" at 0.05) on 100 images a class
    assert d.state("imbalance") is None and d.primary == "weak_class", d.to_dict()
    assert '"flies"' in " ".join(d.state("weak_class").evidence) and d.features.worst_taken_for == "wasps"
    assert d.in_language("zh").state("weak_class").evidence[0].startswith("类别")
    assert diagnose(history, CFG, [500, 480, 450, 40]).primary == "imbalance"  # imbalanced counts: as before


def test_stored_findings_render_in_either_language_and_fall_back_to_the_written_text():
    from trainpilot.tuning.messages import render_stored

    st = diagnose(SCENARIOS["plateau"], build_config({"lr_scheduler": "StepLR"}), COUNTS).to_dict()["states"][0]
    stored = json.loads(json.dumps(st))  # as a run's adjustments.jsonl keeps it
    assert [render_stored(m, "en", "?") for m in stored["findings"]] == stored["evidence"]
    assert render_stored(stored["findings"][0], "zh", "?").startswith("最近 3 轮")
    nan_arg = {"key": "ev.class_collapse", "args": {"name": '"a"', "r": "nan", "mean": 0.5}}
    assert render_stored(nan_arg, "zh", "as written") == "as written"  # a NaN stored as "nan" does not format
    assert render_stored({"key": "ev.gone", "args": {}}, "zh", "as written") == "as written"
    assert render_stored(None, "zh", "as written") == "as written"
