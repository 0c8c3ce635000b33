"""The typed records a run directory holds: one :class:`EpochRow` per epoch, adjustment statuses.

``metrics.jsonl`` keeps the seed's format (one ``train`` and one ``val`` object per epoch, with
the seed's keys); :meth:`EpochRow.from_records` is the one place that turns those records, or an
already-merged row from an older writer, into typed fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable


class AdjustmentStatus(str, Enum):
    """Where an adjustment stands; the string values are what adjustments.jsonl holds."""

    RECORDED = "recorded"          # diagnosed; nothing applied (mode off, or only rejected changes)
    NO_CHANGE = "no_change"        # the advisor proposed nothing
    STALE = "stale"                # an LLM reply that came too late, or a proposal overtaken by another change
    PROPOSED = "proposed"          # suggest mode: waiting for `trainpilot approve|reject`
    APPROVED = "approved"          # approved by the user and applied
    APPLIED = "applied"            # applied, being evaluated
    KEPT = "kept"
    REVERTED = "reverted"
    REJECTED_BY_USER = "rejected_by_user"

    def __str__(self) -> str:
        return self.value


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _num(x: Any) -> float | None:
    """A float from a record value (numbers, or the strings "nan"/"inf" JSON writes); None when missing."""
    if x is None or isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


@dataclass
class EpochRow:
    """One epoch of a run: the train phase, the val phase, and the raw records they came from."""

    epoch: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_macro_f1: float | None = None
    val_precision: float | None = None
    val_recall: float | None = None
    lr: float | None = None
    grad_norm_mean: float | None = None
    grad_norm_max: float | None = None
    nonfinite_steps: int | None = None
    steps: int | None = None
    images_per_s: float | None = None
    epoch_seconds: float | None = None
    ema_loss: float | None = None
    ema_accuracy: float | None = None
    ema_macro_f1: float | None = None
    timestamp: float | None = None
    class_names: list[str] = field(default_factory=list)
    per_class: dict[str, dict] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    train: dict | None = None  # the raw records, for fields not typed here
    val: dict | None = None

    @classmethod
    def from_records(cls, epoch: int, train: dict | None, val: dict | None) -> "EpochRow":
        """Build a row from the epoch's train and val records (either may be missing). A val record
        without a ``phase`` is an already-merged row of an older writer (``train_loss``, ``val_macro_f1``...)."""
        t, v = train or {}, val or {}
        merged = "phase" not in v
        nonfinite, steps = _num(t.get("nonfinite_steps")), _num(t.get("steps"))
        return cls(
            epoch=int(epoch),
            train_loss=_num(_first(t.get("loss"), v.get("train_loss"))),
            train_accuracy=_num(_first(t.get("accuracy"), v.get("train_accuracy"))),
            val_loss=_num(_first(None if merged else v.get("loss"), v.get("val_loss"))),
            val_accuracy=_num(_first(None if merged else v.get("accuracy"), v.get("val_accuracy"))),
            val_macro_f1=_num(_first(None if merged else v.get("macro_f1"), v.get("val_macro_f1"))),
            val_precision=_num(v.get("precision")), val_recall=_num(v.get("recall")),
            lr=_num(_first(t.get("lr"), v.get("lr"))),
            grad_norm_mean=_num(t.get("grad_norm_mean")), grad_norm_max=_num(t.get("grad_norm_max")),
            nonfinite_steps=int(nonfinite) if nonfinite is not None and math.isfinite(nonfinite) else None,
            steps=int(steps) if steps is not None and math.isfinite(steps) else None,
            images_per_s=_num(t.get("images_per_s")),
            epoch_seconds=_num(_first(v.get("epoch_seconds"), t.get("epoch_seconds"))),
            ema_loss=_num(v.get("ema_loss")), ema_accuracy=_num(v.get("ema_accuracy")),
            ema_macro_f1=_num(v.get("ema_macro_f1")),
            timestamp=_num(_first(v.get("timestamp"), t.get("timestamp"))),
            class_names=[str(c) for c in v.get("class_names") or []],
            per_class=v.get("per_class") if isinstance(v.get("per_class"), dict) else {},
            confusion_matrix=v.get("confusion_matrix") if isinstance(v.get("confusion_matrix"), list) else None,
            train=train, val=val)

    @property
    def has_val(self) -> bool:
        return self.val is not None

    def metric(self, name: str, with_ema: bool = False) -> float | None:
        """A validation metric by its config name (val_accuracy, val_macro_f1, val_loss); ``with_ema``:
        the better of the raw and the EMA weights' value, as the engine picks best.pt."""
        raw = {"val_accuracy": self.val_accuracy, "val_macro_f1": self.val_macro_f1, "val_loss": self.val_loss}.get(name)
        ema = {"val_accuracy": self.ema_accuracy, "val_macro_f1": self.ema_macro_f1, "val_loss": self.ema_loss}.get(name)
        values = [v for v in (raw, ema if with_ema else None) if v is not None and math.isfinite(v)]
        if not values:
            return raw
        return min(values) if name == "val_loss" else max(values)


def epoch_rows(records: Iterable[dict]) -> list[EpochRow]:
    """One :class:`EpochRow` per epoch, sorted; a later record for the same epoch and phase wins."""
    phases: dict[int, dict[str, dict | None]] = {}
    for rec in records or []:
        if not isinstance(rec, dict):
            continue
        try:
            epoch = int(rec.get("epoch"))
        except (TypeError, ValueError):
            continue
        slot = phases.setdefault(epoch, {"train": None, "val": None})
        phase = rec.get("phase")
        slot["train" if phase == "train" else "val"] = rec
    return [EpochRow.from_records(e, phases[e]["train"], phases[e]["val"]) for e in sorted(phases)]


def last_val_record(records: Iterable[dict]) -> dict | None:
    """The validation record of the latest epoch that has one."""
    return next((r.val for r in reversed(epoch_rows(records)) if r.val), None)
