"""Reading the run files the reports render: ``metrics.jsonl`` and ``adjustments.jsonl``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from trainpilot.jsonio import atomic_write_text, read_jsonl  # noqa: F401  (used by the report modules)


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def epoch_rows(history: Iterable[dict]) -> list[dict]:
    """Merge per-phase metric records into one row per epoch, sorted by epoch.

    Each row has ``epoch``, ``train_loss``, ``train_acc``, ``val_loss``,
    ``val_acc``, ``val_f1``, ``lr`` (``None`` where unknown) and the raw
    ``train`` / ``val`` records (or ``None``). Records without a ``phase`` are
    read as already-merged rows (``train_loss``, ``val_macro_f1`` ...).
    A later record for the same epoch and phase replaces an earlier one.
    """
    rows: dict[int, dict] = {}
    for rec in history or []:
        if not isinstance(rec, dict):
            continue
        try:
            epoch = int(rec.get("epoch"))
        except (TypeError, ValueError):
            continue
        row = rows.setdefault(epoch, {"epoch": epoch, "train": None, "val": None})
        phase = rec.get("phase")
        if phase == "train":
            row["train"] = rec
        elif phase == "val":
            row["val"] = rec
        else:
            row["merged"] = rec
    out = []
    for epoch in sorted(rows):
        r = rows[epoch]
        t, v, m = r["train"] or {}, r["val"] or {}, r.get("merged") or {}
        out.append({
            "epoch": epoch,
            "train_loss": _first(t.get("loss"), v.get("train_loss"), m.get("train_loss")),
            "train_acc": _first(t.get("accuracy"), v.get("train_accuracy"), m.get("train_accuracy")),
            "val_loss": _first(v.get("loss"), v.get("val_loss"), m.get("val_loss")),
            "val_acc": _first(v.get("accuracy"), v.get("val_accuracy"), m.get("val_accuracy")),
            "val_f1": _first(v.get("macro_f1"), v.get("val_macro_f1"), m.get("val_macro_f1")),
            "lr": _first(t.get("lr"), v.get("lr"), m.get("lr")),
            "train": r["train"], "val": r["val"] or (m or None),
        })
    return out


def last_val(history: Iterable[dict]) -> dict | None:
    """The validation record of the latest epoch that has one."""
    for row in reversed(epoch_rows(history)):
        if row["val"]:
            return row["val"]
    return None


def merge_adjustments(records: Iterable[dict]) -> list[dict]:
    """Latest version of each adjustment (same ``adj_id`` -> later line wins),
    ordered by epoch, then creation time."""
    latest: dict[str, dict] = {}
    for i, rec in enumerate(records or []):
        if not isinstance(rec, dict):
            continue
        key = str(rec.get("adj_id") or f"#{i}")
        latest.pop(key, None)
        latest[key] = rec

    def order(rec: dict):
        try:
            epoch = float(rec.get("epoch"))
        except (TypeError, ValueError):
            epoch = float("inf")
        return (epoch, str(rec.get("created_at") or ""))

    return sorted(latest.values(), key=order)


def load_adjustments(path: Path) -> list[dict]:
    """Adjustment records of ``adjustments.jsonl`` with superseded lines dropped."""
    return merge_adjustments(read_jsonl(path))
