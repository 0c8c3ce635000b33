"""A clean stop: the first Ctrl-C or SIGTERM lets the current batch finish and ends the run at that
point (last.pt stays the resume point); a second one aborts at once."""

from __future__ import annotations

import signal
import sys
import threading

NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
EXIT_CODES = {"Ctrl-C": 130, "SIGTERM": 143}  # 128 + the signal number, what shells report


class StopOnSignal:
    """While active, SIGINT/SIGTERM set ``trainer.interrupt`` (the trainer stops after its current
    batch); a second signal raises KeyboardInterrupt. Inactive outside the main thread and under
    torchrun, where every rank must stop at the same batch."""

    def __init__(self, trainer, enabled: bool = True):
        self.trainer = trainer
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.trainer.interrupt is not None:
            raise KeyboardInterrupt
        self.trainer.interrupt = NAMES.get(signum, f"signal {signum}")
        sys.stderr.write(f"\n{self.trainer.interrupt}: stopping after the current batch "
                         f"(press Ctrl-C again to abort at once)\n")
        sys.stderr.flush()

    def __enter__(self) -> "StopOnSignal":
        if self.enabled:
            for sig in NAMES:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
