"""Training without the images whose label the model confidently contradicts (``drop_suspect_labels``).

With the key on, the model (its EMA where there is one) scores every training image as at evaluation,
without augmentation, once ``FIRST_AFTER`` epochs have trained, and again every ``RESCORE_EVERY``
epochs. An image is left out of the epochs that follow when :func:`trainpilot.suspects.confident_suspects`
flags it: another class reaches the model's usual confidence for that class and beats the rest
(confident learning, per-class thresholds). Early in training a model learns what most images of a
class share before it memorises the exceptions, so at that point it contradicts wrong labels far more
often than right ones.

The sampler draws from the kept images with the epoch's usual length, so the lr schedule and the
class mix it aims for hold. A class is never emptied: where every image of a class would go, the
class keeps them all. Turning the key off (or a rollback) trains on every image again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

import trainpilot.engine.notes  # noqa: F401  (the note.* sentences join the catalogue)
from trainpilot.suspects import confident_suspects
from trainpilot.text import Msg

if TYPE_CHECKING:
    from trainpilot.engine.trainer import Trainer

FIRST_AFTER = 3     # epochs trained before the first scoring: a fresh model contradicts everything at random
RESCORE_EVERY = 3   # epochs between scorings (each costs about a third of a training epoch)


@dataclass
class LabelFilter:
    """Which training images the sampler may draw: ``keep`` (None: all), as scored after ``scored_at`` epochs."""

    keep: torch.Tensor | None = None
    scored_at: int = 0

    @property
    def left_out(self) -> int:
        return 0 if self.keep is None else int((~self.keep).sum())

    def due(self, epochs_done: int) -> bool:
        return epochs_done >= FIRST_AFTER and (self.keep is None or epochs_done - self.scored_at >= RESCORE_EVERY)

    def clear(self) -> None:
        self.keep, self.scored_at = None, 0

    def state_dict(self) -> dict:
        return {"keep": self.keep, "scored_at": self.scored_at}

    def load_state_dict(self, state: dict | None) -> None:
        state = state or {}
        self.keep, self.scored_at = state.get("keep"), int(state.get("scored_at", 0))


def keep_mask(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """True for the images whose label stands; a class that would lose every image keeps them all."""
    keep = torch.ones(len(labels), dtype=torch.bool)
    found = confident_suspects(probs.double(), labels)
    if found:
        keep[torch.tensor([i for i, _ in found])] = False
    for c in labels.unique():
        own = labels == c
        if not keep[own].any():
            keep[own] = True
    return keep


@torch.inference_mode()
def train_probabilities(tr: "Trainer") -> torch.Tensor:
    """Softmax scores of every training image (all of them, on every rank), as at evaluation."""
    module = tr.ema.module if tr.ema is not None else tr.model
    module.eval()
    out = []
    for x_u8, _ in tr._eval_batches(tr.data.train, shard=False):
        x = tr.augment.resize(x_u8.to(tr.device), memory_format=tr.memory_format)
        with tr.precision.autocast(tr.device):
            out.append(module(x).float().softmax(1).cpu())
    return torch.cat(out)


def refresh(tr: "Trainer") -> Msg | None:
    """Score the training images when due; a note of what is left out (its English text also kept in the
    run's summary), or None."""
    flt = tr.label_filter
    if not tr.cfg.drop_suspect_labels:
        flt.clear()
        return None
    if not flt.due(tr.epoch):
        return None
    flt.keep, flt.scored_at = keep_mask(train_probabilities(tr), tr.data.train.labels), tr.epoch
    note = Msg("note.left_out", {"n": flt.left_out, "m": len(flt.keep), "e": tr.epoch})
    tr.filter_notes.append(note.render("en"))
    return note
