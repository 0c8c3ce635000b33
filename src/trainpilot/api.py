"""The library entry point: ``trainpilot.train(config) -> Run``.

This module assembles the parts (config, data, model, engine, sinks, and the tuning controller
when it is enabled); the engine itself knows nothing about tuning or LLMs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from trainpilot.config import TrainConfig, build_config, load_config, output_dir
from trainpilot.data.images import Geometry
from trainpilot.data.prepare import prepare_data, scan
from trainpilot.data.profile import describe_dict, profile_dataset
from trainpilot.engine.dist import init_distributed, resolve_device, shutdown_distributed
from trainpilot.engine.precision import choose_precision
from trainpilot.engine.rundir import RunDir, RunLock, StatusFile, StatusSink, new_session_id, read_jsonl, write_json_atomic
from trainpilot.engine.signals import StopOnSignal
from trainpilot.jsonio import read_json
from trainpilot.engine.sinks import ConsoleSink, JsonlSink, JsonLogSink, Progress, TensorBoardSink
from trainpilot.engine.checkpoint import load_checkpoint
from trainpilot.engine.state import copy_to_user_dirs
from trainpilot.engine.trainer import Trainer
from trainpilot.models import build_model, resolve_model_name
from trainpilot.recipe import apply_recipe


@dataclass
class Run:
    """A finished (or stopped) run: where it is and how it went."""

    dir: Path
    summary: dict
    config: TrainConfig
    notices: list[str] = field(default_factory=list)

    @property
    def history(self) -> list[dict]:
        return read_jsonl(self.dir / "metrics.jsonl")

    @property
    def best_checkpoint(self) -> Path:
        return self.dir / "checkpoints" / "best.pt"


def _as_config(config: TrainConfig | dict | str | Path | None, overrides: list[str] | None) -> TrainConfig:
    if isinstance(config, TrainConfig):  # only what was set counts as set: the recipe fills in the rest
        return load_config(None, overrides, **config.model_dump(mode="json", exclude_unset=True))
    if isinstance(config, dict):
        return load_config(None, overrides, **config)
    return load_config(config, overrides)


def _model_stem(cfg: TrainConfig) -> str:
    return cfg.model_filename or f"{cfg.model_name}_{cfg.timestamp or time.strftime('%Y%m%d-%H%M%S')}"


def build_trainer(config: TrainConfig | dict | str | Path | None = None, *, overrides: list[str] | None = None,
                  runs_dir: str | Path = "runs", resume: str | Path | None = None, hooks: list | None = None,
                  console: Console | None = None, name: str | None = None) -> tuple[Trainer, list[str]]:
    """Everything :func:`train` does before the first epoch: config, data, model, precision, run directory."""
    console = console or Console(stderr=True, quiet=True)
    notices: list[str] = []
    ckpt = None
    if resume is not None:
        run = RunDir(Path(resume))
        if not run.last.exists():
            raise ValueError(f"cannot resume '{resume}': {run.last} does not exist (the run never finished an epoch?)")
        ckpt = load_checkpoint(run.last)
        cfg = build_config(ckpt["config"])
    else:
        cfg = _as_config(config, overrides)
    resolve_model_name(cfg.model_name)  # fail fast on a bad name, before decoding any image

    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = init_distributed(device)
    if dist.enabled and device.type == "cuda":
        torch.cuda.set_device(device)

    with console.status("scanning and decoding images (once; they are cached in RAM when they fit)"):
        index = scan(cfg)
        recipe = None
        if ckpt is None:
            profile = profile_dataset(index)
            cfg, choices = apply_recipe(cfg, profile)
            resolve_model_name(cfg.model_name)
            recipe = {"profile": profile.to_dict(), "choices": [c.to_dict() for c in choices]}
        data = prepare_data(cfg, index=index)
    if data.skipped:
        listed = "; ".join(f"{p} ({why})" for p, why in data.skipped[:5])
        more = f" and {len(data.skipped) - 5} more" if len(data.skipped) > 5 else ""
        notices.append(f"skipped {len(data.skipped)} unreadable or non-image file(s): {listed}{more}")
    if cfg.rotate_to_fit and cfg.input_aspect == 1.0:
        notices.append("rotate_to_fit=true does nothing with a square input (input_aspect=1): set input_aspect, "
                       "or let the recipe choose it (resize_mode=letterbox on elongated images)")

    torch.manual_seed(cfg.seed)
    model, model_info = build_model(cfg, len(data.classes))
    geo = Geometry.of(cfg)
    sample = torch.zeros(min(cfg.batch_size, 16), 3, geo.height, geo.width)
    sample = sample.to(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    precision = choose_precision(cfg, device, model, sample)
    if precision.notice:
        notices.append(precision.notice)

    if ckpt is None:
        runs_dir = Path(runs_dir)
        session_id = dist.broadcast(new_session_id(cfg.model_name.replace("/", "_"), runs_dir, name)
                                    if dist.is_main else None)
        run = RunDir(runs_dir / session_id)
    for key in ("model_save_dir", "default_param_save_dir", "tensorboard_log_dir"):
        _, notice = output_dir(cfg, key)
        if notice:
            notices.append(notice)

    trainer = Trainer(cfg, data, model, model_info, device, precision, dist, run.session_id)
    trainer.run = run
    trainer.recipe = recipe if recipe is not None else read_json(run.root / "run.json").get("recipe")
    # the controller first: later hooks (a study's pruner) see the epoch as the controller left it
    trainer.hooks = _controller_hooks(cfg, run) + list(hooks or [])
    # one process trains a run directory at a time: a second resume is refused before it writes anything
    trainer.lock = RunLock(run.root).acquire() if dist.is_main else None
    if ckpt is not None:
        trainer.load_state_dict(ckpt)
        if dist.is_main:
            run.truncate_metrics_after(trainer.epoch)
        trainer.history = read_jsonl(run.metrics)  # the controller diagnoses from the whole history
        notices.append(f"resumed {run.session_id} after epoch {trainer.epoch}")
    return trainer, notices


def train(config: TrainConfig | dict | str | Path | None = None, *, overrides: list[str] | None = None,
          runs_dir: str | Path = "runs", resume: str | Path | None = None, hooks: list | None = None,
          quiet: bool = False, json_logs: bool = False, console: Console | None = None, name: str | None = None) -> Run:
    """Train a classifier; see the README for the config keys. ``name``: the run directory's name
    (default ``<model>_<time>``). Returns the :class:`Run`."""
    console = console or Console(stderr=True, quiet=quiet, soft_wrap=True)
    trainer, notices = build_trainer(config, overrides=overrides, runs_dir=runs_dir, resume=resume, hooks=hooks,
                                     console=console, name=name)
    cfg, dist, run, data = trainer.cfg, trainer.dist, trainer.run, trainer.data
    resumed = resume is not None
    if not dist.is_main:
        console = Console(quiet=True)
    tb_sink, status = None, None
    if dist.is_main:
        run.create()
        status = StatusFile(run.status)
        status.write("running", "starting", epoch=trainer.epoch)
        _write_run_files(trainer, run, data, trainer.model_info, notices)
        trainer.sinks = [JsonlSink(run.metrics), StatusSink(status)]
        if cfg.use_tensorboard:
            tb_dir = output_dir(cfg, "tensorboard_log_dir")[0]
            tb_dir = tb_dir / run.session_id if tb_dir else run.root / "tensorboard"
            tb_sink = TensorBoardSink(tb_dir, cfg.metrics)
            trainer.sinks.append(tb_sink)
        trainer.sinks.append(JsonLogSink() if json_logs else ConsoleSink(console, cfg.metrics))
        choices = (trainer.recipe or {}).get("choices") or []
        if choices and not resumed:
            console.print(f"[bold]auto recipe[/] ({describe_dict(trainer.recipe['profile'])}; "
                          f"set a key, or recipe=off, to choose yourself):", highlight=False)
            for c in choices:
                console.print(f"  [cyan]{c['key']}[/] = {c['value']}: {c['reason']}", highlight=False)
    warn = Console(stderr=True, soft_wrap=True)  # notices show even with --quiet: they are warnings
    if dist.is_main:
        for note in notices:
            warn.print(f"[yellow]note:[/] {note}", highlight=False)

    resume_hint = f"continue with: trainpilot train --resume {run.root}"
    try:
        with StopOnSignal(trainer, enabled=not dist.enabled):
            if quiet or json_logs or not dist.is_main:
                summary = trainer.fit()
            else:
                with Progress(console, cfg.num_epochs) as progress:
                    trainer.progress = progress
                    summary = trainer.fit()
            if dist.is_main:
                for hook in trainer.hooks:
                    if hasattr(hook, "finish"):
                        hook.finish(trainer)
            if trainer.interrupt is not None and dist.is_main:
                warn.print(f"[yellow]stopped[/] by {trainer.interrupt} after epoch {trainer.epoch}; {resume_hint}",
                           highlight=False)
            if dist.is_main:
                summary["auto"] = {c["key"]: c["value"] for c in (trainer.recipe or {}).get("choices") or []}
                summary.update(_finish(trainer, run, tb_sink, data, notices))
                write_json_atomic(run.root / "summary.json", summary)
                status.write(trainer.status, summary["stop_reason"], epoch=trainer.epoch)
            dist.barrier()  # no rank leaves (and tears down its process group) while rank 0 still writes
    except KeyboardInterrupt:
        _final_status(status, "stopped", f"aborted by a second interrupt during epoch {trainer.epoch + 1}; "
                                         f"last.pt holds epoch {trainer.epoch}", trainer.epoch)
        warn.print(f"[red]aborted[/] after epoch {trainer.epoch}; {resume_hint}", highlight=False)
        raise
    except BaseException as err:
        _final_status(status, "crashed", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                      trainer.epoch)
        raise
    finally:
        for hook in trainer.hooks:
            if hasattr(hook, "close"):
                hook.close()
        if trainer.lock is not None:
            trainer.lock.release()
        if dist.enabled:
            shutdown_distributed()  # a process that exits with its group alive can abort in gloo's threads
    return Run(run.root, summary, trainer.cfg, notices)


def _final_status(status: StatusFile | None, state: str, reason: str, epoch: int) -> None:
    """The last status write of a run that ends by an exception; a full disk must not hide that exception."""
    if status is None:
        return
    try:
        status.write(state, reason, epoch=epoch)
    except OSError:
        pass


def _controller_hooks(cfg: TrainConfig, run: RunDir) -> list:
    if not cfg.intelligent_training.enabled:
        return []
    from trainpilot.tuning.controller import TuningController

    return [TuningController(cfg.intelligent_training, run)]


def _write_run_files(tr: Trainer, run: RunDir, data, model_info: dict, notices: list[str]) -> None:
    cfg = tr.cfg
    resolved = cfg.to_dict()
    resolved["model_name_resolved"] = model_info["timm_name"]
    write_json_atomic(run.resolved_config, resolved)
    write_json_atomic(run.root / "run.json", {
        "session_id": run.session_id, "model_note": cfg.model_note, "classes": data.classes,
        "train_counts": data.train_counts(), "val_count": len(data.val), "layout": data.index.layout,
        "data_dir": str(data.index.root), "cached_in_ram": data.cached, "model": model_info,
        "skipped_files": [{"path": p, "why": w} for p, w in data.skipped], "notices": notices,
        "torch": torch.__version__, "recipe": tr.recipe,
    })
    param_dir, _ = output_dir(cfg, "default_param_save_dir")
    if param_dir is not None:
        write_json_atomic(param_dir / f"{_model_stem(cfg)}_config.json", resolved)


def _finish(tr: Trainer, run: RunDir, tb_sink, data, notices: list[str]) -> dict:
    """After the last epoch: best.pt evaluated on val (and test), copies, TensorBoard, summary.html."""
    from trainpilot.finish import adjust_best, evaluate_best, final_metrics

    extra: dict[str, Any] = {"run_dir": str(run.root), "best_checkpoint": str(run.best)}
    extra.update(adjust_best(run.root, data.index, tr.device, tr.cfg.batch_size * 2))
    model_dir, _ = output_dir(tr.cfg, "model_save_dir")
    extra["copied"] = copy_to_user_dirs(tr, model_dir, _model_stem(tr.cfg))
    write_json_atomic(run.resolved_config, {**tr.cfg.to_dict(), "model_name_resolved": tr.model_info["timm_name"]})
    results = evaluate_best(run.root, data.index, tr.device, tr.cfg.batch_size * 2)
    extra["final"] = final_metrics(results)
    if tr.cfg.suspect_labels:
        from trainpilot.suspects import write_suspect_labels

        suspects = write_suspect_labels(run.root, data.index, tr.device, tr.cfg.batch_size * 2)
        if suspects is not None:
            extra["suspect_labels"] = suspects
    if tb_sink is not None:
        val = results.get("val")
        cm_png = run.reports / "confusion_matrix_val.png" if val else None
        final = {"val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"]} if val else {}
        tb_sink.finish(cm_png, tr.cfg.to_dict(), final)
        tb_sink.close()
        extra["tensorboard"] = str(tb_sink.log_dir)
    try:
        from trainpilot.reports import write_summary_html

        extra["summary_html"] = str(write_summary_html(run.root, tr.cfg.intelligent_training.report_language,
                                                       extra.get("suspect_labels")))
    except ImportError:  # matplotlib missing
        pass
    return extra
