"""Where epoch events go: metrics.jsonl, TensorBoard, the console (rich progress or JSON lines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trainpilot.engine.events import EpochRow
from trainpilot.jsonio import append_jsonl, sanitize_for_json


class JsonlSink:
    """Appends every record to metrics.jsonl and flushes it (the run's source of truth)."""

    def __init__(self, path: Path):
        self.path = path

    def emit(self, record: dict) -> None:
        append_jsonl(self.path, record)

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Scalars per epoch (loss, the configured metrics, lr, throughput); confusion matrix and hparams at the end."""

    def __init__(self, log_dir: Path, metrics: list[str]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.metrics = metrics
        self.log_dir = log_dir

    def emit(self, record: dict) -> None:
        step, phase = record["epoch"], record["phase"]
        self.writer.add_scalar(f"loss/{phase}", record["loss"], step)
        if phase == "train":
            self.writer.add_scalar("accuracy/train", record["accuracy"], step)
            self.writer.add_scalar("lr", record["lr"], step)
            self.writer.add_scalar("throughput/images_per_s", record["images_per_s"], step)
            self.writer.add_scalar("grad_norm/mean", record["grad_norm_mean"], step)
            return
        for m in self.metrics:
            self.writer.add_scalar(f"{m}/val", record[m], step)
            if record.get(f"ema_{m}") is not None:
                self.writer.add_scalar(f"{m}/val_ema", record[f"ema_{m}"], step)
        self.writer.flush()

    def finish(self, confusion_png: Path | None, hparams: dict, final: dict) -> None:
        if confusion_png is not None and confusion_png.exists():
            import numpy as np
            from PIL import Image

            img = np.asarray(Image.open(confusion_png).convert("RGB"))
            self.writer.add_image("confusion_matrix/val", img, dataformats="HWC")
        flat = {k: v for k, v in hparams.items() if isinstance(v, (int, float, str, bool))}
        self.writer.add_hparams(flat, {f"hparam/{k}": v for k, v in final.items() if isinstance(v, (int, float))},
                                run_name=".")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class JsonLogSink:
    """--json-logs: one JSON object per event on stdout, for scripts."""

    def emit(self, record: dict) -> None:
        slim = {k: v for k, v in record.items() if k not in ("confusion_matrix", "per_class", "prior_corrected")}
        sys.stdout.write(json.dumps({"event": "epoch", **sanitize_for_json(slim)}, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class ConsoleSink:
    """One readable line per epoch under the progress bar, with the configured metrics."""

    def __init__(self, console, metrics: list[str]):
        self.console, self.metrics = console, metrics
        self._train: dict | None = None

    def emit(self, record: dict) -> None:
        if record["phase"] == "train":
            self._train = record
            return
        row = EpochRow.from_records(record["epoch"], self._train, record)
        nan = float("nan")
        shown = "  ".join(f"{m} {record[m]:.4f}" for m in self.metrics)
        ema = f"  (EMA acc {row.ema_accuracy:.4f})" if row.ema_accuracy is not None else ""
        self.console.print(
            f"epoch {row.epoch:>3}  train loss {row.train_loss if row.train_loss is not None else nan:.4f}  "
            f"val loss {row.val_loss:.4f}  {shown}{ema}  lr {row.lr or 0:.3g}  {row.images_per_s or 0:.0f} img/s")

    def close(self) -> None:
        pass


class Progress:
    """A rich progress bar with ETA for the current phase, plus an overall epochs bar."""

    def __init__(self, console, total_epochs: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                console=console, transient=False)
        self.total_epochs = total_epochs
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def start_phase(self, description: str, total: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)
