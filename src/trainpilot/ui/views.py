"""What each page shows, as plain JSON-ready values, computed from the run store.

Nothing here reads a run directory by itself: every value comes from :class:`~trainpilot.runs.Run`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from trainpilot.data.thumbs import thumbnail_under
from trainpilot.engine.events import EpochRow
from trainpilot.reports.i18n import label
from trainpilot.runs import Run
from trainpilot.runs_cli import config_diff, flat_config, run_row
from trainpilot.text import notes_in, render_stored
from trainpilot.tuning.messages import reason_in, render_findings, state_label
from trainpilot.ui.i18n import strings

SERIES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_macro_f1", "lr")
SHORT_KEYS = {"learning_rate": "lr", "weight_decay": "wd", "label_smoothing": "smoothing", "dropout_rate": "dropout",
              "use_class_weights": "class weights", "advanced_augmentation_enabled": "mixup", "num_epochs": "epochs",
              "batch_size": "batch", "gradient_clipping": "clipping", "model_ema_decay": "EMA decay",
              "use_pretrained": "ImageNet weights"}
SUSPECTS_SHOWN = 12
DRAWN = ("proposed", "approved", "applied", "kept", "reverted")
PENDING = ("proposed", "approved", "applied")
OUTCOME_WORDS = {"en": {"kept": "kept", "reverted": "reverted", "proposed": "awaiting approval", "approved": "evaluating",
                        "applied": "evaluating", "rejected_by_user": "rejected", "stale": "stale"},
                 "zh": {"kept": "已保留", "reverted": "已回滚", "proposed": "等待批准", "approved": "评估中",
                        "applied": "评估中", "rejected_by_user": "已拒绝", "stale": "已过期"}}


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _nice(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.2g}"


def change_words(change: dict) -> str:
    """One change as a person reads it: ``lr ÷2``, ``wd ×2``, ``class weights on``, ``sampler = sqrt``."""
    key, old, new = change.get("key", ""), change.get("old"), change.get("new")
    name = SHORT_KEYS.get(key, key)
    if isinstance(new, bool):
        return f"{name} {'on' if new else 'off'}"
    o, n = _finite(old), _finite(new)
    if o and n and not isinstance(old, bool):
        return f"{name} ×{_nice(n / o)}" if n >= o else f"{name} ÷{_nice(o / n)}"
    return f"{name} = {new}"


def marker_label(adj: dict, lang: str) -> str:
    """``lr ÷2 · kept``: the changes and where they stand, never the adjustment's id."""
    status = str(adj.get("status") or "")
    words = ", ".join(change_words(c) for c in adj.get("changes") or [])
    return f"{words} · {OUTCOME_WORDS['zh' if lang == 'zh' else 'en'].get(status, status)}"


def adjustment_view(adj: dict, decisions: dict[str, dict], lang: str, reports: dict[str, str]) -> dict:
    """One timeline card; ``decisions``: adjustment id -> its decision."""
    status = str(adj.get("status") or "")
    epoch = int(adj.get("approved_at_epoch") or adj.get("epoch") or 0)
    outcome = adj.get("outcome") if isinstance(adj.get("outcome"), dict) else None
    window_end = (outcome or {}).get("evaluated_at_epoch") or epoch + int(adj.get("evaluate_after_epochs") or 1)
    diagnosis = adj.get("diagnosis") or {}
    decision = decisions.get(str(adj.get("adj_id")))
    return {"id": adj.get("adj_id"), "epoch": epoch, "status": status, "status_label": label(lang, "status_", status),
            "tone": "kept" if status == "kept" else "reverted" if status == "reverted" else
                    "pending" if status in PENDING else "muted",
            "drawn": bool(adj.get("changes")) and status in DRAWN, "label": marker_label(adj, lang),
            "window": [epoch, int(window_end)],
            "trigger": label(lang, "trigger_", adj.get("trigger") or ""),
            "reason": reason_in(adj, lang),
            "states": [{"state": state_label(s.get("state", ""), lang), "severity": s.get("severity"),
                        "evidence": render_findings(s, lang)} for s in diagnosis.get("states") or []],
            "changes": [{**c, "words": change_words(c), "reason": reason_in(c, lang)}
                        for c in adj.get("changes") or [] if isinstance(c, dict)],
            "rejected": [{**x, "reason": reason_in(x, lang)} for x in adj.get("rejected") or [] if isinstance(x, dict)],
            "notes": notes_in(adj, "notes", lang) + notes_in(adj, "apply_notes", lang),
            "advisor": adj.get("advisor") or "", "analysis": adj.get("raw_output") or adj.get("analysis_text") or "",
            "outcome": outcome and {**outcome, "why": render_stored(outcome.get("why_msg"), lang, str(outcome.get("why") or ""))},
            "decision": decision, "report": reports.get(str(adj.get("adj_id")))}


def series(rows: list[EpochRow]) -> dict[str, list]:
    out: dict[str, list] = {"epoch": [r.epoch for r in rows]}
    for name in SERIES:
        out[name] = [_finite(getattr(r, name)) for r in rows]
    return out


def recall(rows: list[EpochRow], classes: list[str]) -> list[list[float | None]]:
    """Per-class recall (class x epoch)."""
    return [[_finite((r.per_class.get(c) or {}).get("recall")) for r in rows] for c in classes]


def confusion(run: Run, rows: list[EpochRow]) -> dict | None:
    """The confusion matrix of best.pt on val (test when that is all there is); during a run, the best epoch's."""
    evals = run.evaluations
    ev = evals.get("val") or evals.get("test")
    if ev and ev.get("confusion_matrix"):
        return {"classes": ev.get("class_names") or run.classes, "counts": ev["confusion_matrix"],
                "normalised": ev.get("confusion_matrix_normalized"), "source": f"best.pt on {ev.get('split')}"}
    best = run.best()
    row = next((r for r in rows if best and r.epoch == best[0] and r.confusion_matrix), None)
    if row is None:
        return None
    norm = [[round(c / sum(line), 6) if sum(line) else 0.0 for c in line] for line in row.confusion_matrix]
    return {"classes": row.class_names or run.classes, "counts": row.confusion_matrix, "normalised": norm,
            "source": f"epoch {row.epoch}"}


def changed_keys(adjustments: list[dict]) -> dict[str, Any]:
    """Config key -> its value before the run changed it, for keys an applied (kept or still being judged)
    adjustment changed."""
    out: dict[str, Any] = {}
    for a in adjustments:
        if a.get("status") in ("applied", "approved", "kept"):
            for c in a.get("changes") or []:
                if c.get("key"):
                    out.setdefault(c["key"], c.get("old"))
    return out


def runs_table(runs: list[Run]) -> list[dict]:
    """One row per run for the Runs page."""
    out = []
    for run in runs:
        row = run_row(run)
        counts = run.adjustment_counts()
        final = (run.summary or {}).get("final") or {}
        test = final.get("test") or {}
        row.update(pending=sum(counts.get(s, 0) for s in PENDING), started=run.started_at(),
                   test_accuracy=test.get("accuracy"), test_macro_f1=test.get("macro_f1"))
        out.append(row)
    return out


def run_detail(run: Run, lang: str) -> dict:
    """Everything the run page draws."""
    rows, classes, adjustments = run.rows, run.classes, run.adjustments
    reports = {}
    for p in run.reports:
        if p.suffix == ".md" and "_adj_" in p.stem:
            reports["adj_" + p.stem.split("_adj_", 1)[1]] = p.name
    decisions: dict[str, dict] = {}
    for d in run.decisions:  # the first decision of each proposal counts, as in Run.decision
        decisions.setdefault(str(d.get("adj_id")), d)
    cards = [adjustment_view(a, decisions, lang, reports) for a in adjustments]
    status, cfg = run.status, run.config
    return {"id": run.id, "status": status.state, "reason": status.reason, "row": runs_table([run])[0],
            "monitor": run.monitor, "series": series(rows), "classes": classes, "train_counts": run.train_counts,
            "recall": recall(rows, classes), "confusion": confusion(run, rows), "adjustments": cards,
            "config": cfg, "changed": changed_keys(adjustments), "mode": (cfg.get("intelligent_training") or {}).get("mode"),
            "reports": [p.name for p in run.reports if p.suffix in (".md", ".json", ".html", ".csv", ".png")],
            "checkpoints": sorted(run.checkpoints), "suspects": suspects(run), "scoring": scoring(run, lang)}


def scoring(run: Run, lang: str) -> str | None:
    """What best.pt adds to the model's scores (test-time flips, the class-prior tau), in words; None before
    the run has finished."""
    summary = run.summary or {}
    flips, prior = summary.get("test_time_augmentation"), summary.get("logit_adjustment")
    if flips is None and prior is None:
        return None
    words = strings(lang)
    parts = [words["run.flips"] if (flips or {}).get("used") else words["run.one_view"]]
    if (prior or {}).get("tau"):
        parts.append(f"{words['run.prior']} {prior['tau']:g}")
    return " · ".join(parts)


def suspects(run: Run, shown: int = SUSPECTS_SHOWN) -> dict | None:
    """The first ``shown`` training images best.pt contradicts, each with a thumbnail (a data URL, so no
    route serves the dataset) where its file is still in the run's data folder; None when there are none."""
    rows = run.suspect_labels
    if not rows:
        return None
    root = run.config.get("data_dir")
    return {"count": len(rows), "shown": [
        {"file": r["file"], "label": r.get("label"), "suggested": r.get("suggested"), "p_label": r.get("p_label"),
         "thumb": _thumb(root, r["file"]) if root else None} for r in rows[:shown]]}


@lru_cache(maxsize=512)
def _thumb(root: str, file: str) -> str | None:
    return thumbnail_under(Path(root), file, size=80)


def compare(runs: list[Run]) -> dict:
    """Val curves of each run, its results (the Runs page's row), and the config keys that differ between any of them."""
    curves = [{"id": r.id, "monitor": r.monitor, **series(r.rows)} for r in runs]
    keys: dict[str, None] = {}
    for other in runs[1:]:
        for key, _, _ in config_diff(runs[0].config, other.config):
            keys.setdefault(key)
    flat = [flat_config(r.config) for r in runs]
    diff = [{"key": k, "values": [f.get(k, "(absent)") for f in flat]} for k in sorted(keys)]
    return {"runs": curves, "results": runs_table(runs), "diff": diff}
