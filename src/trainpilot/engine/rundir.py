"""The run directory: the unit users share. Everything a report says is derivable from it.

runs/<session_id>/
  config.resolved.json   metrics.jsonl   adjustments.jsonl   run.json
  checkpoints/last.pt, best.pt     reports/     tensorboard/
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from trainpilot.jsonio import append_jsonl, read_jsonl, write_json_atomic  # noqa: F401  (re-exported)


@dataclass
class RunDir:
    root: Path

    @property
    def session_id(self) -> str:
        return self.root.name

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def adjustments(self) -> Path:
        return self.root / "adjustments.jsonl"

    @property
    def resolved_config(self) -> Path:
        return self.root / "config.resolved.json"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    def create(self) -> "RunDir":
        for d in (self.root, self.checkpoints, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def truncate_metrics_after(self, epoch: int) -> None:
        """On resume: drop records of epochs the checkpoint does not contain (they are re-run)."""
        keep = [r for r in read_jsonl(self.metrics) if int(r.get("epoch", 0)) <= epoch]
        tmp = self.metrics.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep), encoding="utf-8")
        os.replace(tmp, self.metrics)


def new_session_id(model_name: str, runs_dir: Path) -> str:
    """<Model>_<YYYYmmdd_HHMMSS>, with a suffix when that name is taken (two runs in one second)."""
    base = f"{model_name}_{time.strftime('%Y%m%d_%H%M%S')}"
    name, n = base, 1
    while (runs_dir / name).exists():
        n += 1
        name = f"{base}_{n}"
    return name


def resolve_run_dir(path: str | Path) -> RunDir:
    """A run directory given by path, or a ValueError with one line saying what is wrong."""
    root = Path(path)
    if not (root / "checkpoints").is_dir() and not (root / "metrics.jsonl").exists():
        raise ValueError(f"'{root}' is not a trainpilot run directory (no checkpoints/ or metrics.jsonl)")
    return RunDir(root)
