"""``time_budget_minutes``: how many epochs fit the wall-clock budget, re-planned after every epoch.

The estimate is the mean time of the last :data:`WINDOW` epochs, not of all of them, so that a busy
spell on a shared machine (another job, a slow first epoch) shortens the plan only while it lasts: when
the epochs get faster again, the epochs cut for it come back, up to the number planned before any cut
(the config's, or the controller's extension of it). A plan grows only by a margin of one epoch, so that
one noisy epoch does not re-plan the lr schedule back and forth.
"""

from __future__ import annotations

import math

WINDOW = 3  # epochs; the label filter scores every 3rd epoch, so the window always holds one such epoch


def recent_epoch_seconds(epoch_seconds: list[float]) -> float:
    """The epoch time the plan is made with: the mean of the last :data:`WINDOW` epochs."""
    recent = epoch_seconds[-WINDOW:]
    return max(sum(recent) / len(recent), 1e-9)


def epochs_that_fit(epoch_seconds: list[float], budget_s: float, planned: int, cap: int) -> int:
    """The number of epochs to plan for after ``len(epoch_seconds)`` epochs took those seconds: at most
    ``cap``, at least the epochs done; ``planned`` (the current plan) is kept unless it no longer fits or
    at least two more epochs fit."""
    done = len(epoch_seconds)
    fits = done + max(0, math.floor((budget_s - sum(epoch_seconds)) / recent_epoch_seconds(epoch_seconds)))
    if fits < planned:
        return max(done, fits)
    if fits >= planned + 2 and planned < cap:
        return min(cap, fits - 1)
    return planned
