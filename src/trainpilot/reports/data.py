"""The rows the report modules render, from the run store's typed records."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from trainpilot.engine.events import EpochRow, epoch_rows as typed_rows, last_val_record
from trainpilot.jsonio import atomic_write_text, read_jsonl  # noqa: F401  (used by the report modules)


def report_row(row: EpochRow) -> dict:
    """An :class:`EpochRow` as the dict the report tables and plots index by column."""
    return {"epoch": row.epoch, "train_loss": row.train_loss, "train_acc": row.train_accuracy,
            "val_loss": row.val_loss, "val_acc": row.val_accuracy, "val_f1": row.val_macro_f1, "lr": row.lr,
            "train": row.train, "val": row.val}


def epoch_rows(history: Iterable[dict]) -> list[dict]:
    """One row per epoch, sorted: ``epoch``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
    ``val_f1``, ``lr`` (``None`` where unknown) and the raw ``train`` / ``val`` records (or ``None``)."""
    return [report_row(r) for r in typed_rows(history)]


def last_val(history: Iterable[dict]) -> dict | None:
    """The validation record of the latest epoch that has one."""
    return last_val_record(history)


def merge_adjustments(records: Iterable[dict]) -> list[dict]:
    """Latest version of each adjustment (same ``adj_id`` -> later line wins), by epoch then creation time."""
    from trainpilot.runs import latest_adjustments

    return latest_adjustments(records)


def load_adjustments(path: Path) -> list[dict]:
    """Adjustment records of ``adjustments.jsonl`` with superseded lines dropped."""
    return merge_adjustments(read_jsonl(path))
