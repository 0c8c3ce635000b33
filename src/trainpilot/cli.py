"""The `trainpilot` command.

User mistakes (a bad key, a missing folder, a Windows path on Linux, a broken run directory)
print one line starting with ``error:`` and exit with status 2; set TRAINPILOT_DEBUG=1 to see
the traceback instead.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train image classifiers from a folder of images, and tune them while they train.")
console = Console(stderr=True, soft_wrap=True)

RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="Where run directories go.")
SET = typer.Option(None, "--set", help="Override a config key: --set key=value (dotted keys for sections).")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")
BATCH = typer.Option(64, "--batch-size", min=1, help="Images per forward pass.")


def _version(value: bool) -> None:
    if value:
        from trainpilot import __version__

        print(f"trainpilot {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Train image classifiers from a folder of images, and tune them while they train."""


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (overrides data_dir)."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON or YAML config (the seed format loads as is)."),
    model: Optional[str] = typer.Option(None, "--model", help="model_name: a timm name or seed alias (trainpilot models)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="num_epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="batch_size."),
    img_size: Optional[int] = typer.Option(None, "--img-size", help="image_size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning_rate (the peak, after warmup)."),
    device: Optional[str] = typer.Option(None, "--device", help="device: auto, cpu, cuda, cuda:N or mps."),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--no-pretrained", help="use_pretrained."),
    name: Optional[str] = typer.Option(None, "--name", help="The run's name: runs/NAME instead of runs/<model>_<time>."),
    set_: Optional[list[str]] = SET,
    runs_dir: Path = RUNS_DIR,
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue runs/<session_id> from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or per-epoch lines."),
    json_logs: bool = typer.Option(False, "--json-logs", help="One JSON object per event on stdout."),
    ui: bool = typer.Option(False, "--ui", help="Serve the dashboard for this run while it trains (127.0.0.1:7860)."),
) -> None:
    """Train a classifier; writes a run directory under --runs-dir. The shortcuts (--model, --epochs, ...)
    are the same as --set KEY=VALUE; a later --set wins."""
    shortcuts = {"data_dir": str(data) if data is not None else None, "model_name": model, "num_epochs": epochs,
                 "batch_size": batch_size, "image_size": img_size, "learning_rate": lr, "device": device,
                 "use_pretrained": pretrained}
    given = [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in shortcuts.items() if v is not None]
    if ui:
        __import__("trainpilot.ui.cli", fromlist=["_"]).serve_during_training(runs_dir, name, resume)
    if resume is not None:
        if given or set_ or config or name:
            raise ValueError("--resume continues a run with its own config; drop --config, --set, --name and the "
                             "shortcut options")
        from trainpilot.api import train as run_training

        result = run_training(resume=resume, quiet=quiet, json_logs=json_logs, console=_console(quiet))
    else:
        # a bad key, value or data folder fails here, in a second, before the engine (torch, timm) is loaded
        from trainpilot.config import input_path, load_config

        cfg = load_config(config, given + list(set_ or []))
        input_path(cfg, "data_dir")
        from trainpilot.api import train as run_training

        result = run_training(cfg, runs_dir=runs_dir, name=name, quiet=quiet, json_logs=json_logs,
                              console=_console(quiet))
    _print_summary(result.summary, json_logs)
    if result.summary.get("interrupted_by"):
        from trainpilot.engine.signals import EXIT_CODES

        sys.exit(EXIT_CODES.get(result.summary["interrupted_by"], 130))


@app.command()
def models(pattern: str = typer.Argument("", help="A glob such as 'mobilenetv3*', or a word matched anywhere.")) -> None:
    """Model names: seed aliases and timm names, and which have ImageNet weights usable offline here."""
    from trainpilot.models import list_model_names

    rows = list_model_names(pattern)
    if not rows:
        raise ValueError(f"no model matches {pattern!r}; try a shorter pattern, e.g. trainpilot models resnet")
    table = Table(title=f"{len(rows)} model(s)" + (f" matching {pattern!r}" if pattern else ""))
    for col in ("name", "timm model", "offline weights"):
        table.add_column(col)
    for alias, timm_name, offline in rows:
        table.add_row(alias, timm_name if timm_name != alias else "", offline or "-")
    Console(width=None if sys.stdout.isatty() else 120).print(table)


@app.command()
def demo(
    runs_dir: Path = RUNS_DIR,
    set_: Optional[list[str]] = SET,
    quiet: bool = typer.Option(False, "--quiet"),
    json_logs: bool = typer.Option(False, "--json-logs"),
) -> None:
    """Generate the synthetic defect dataset (5 classes, seed names) and train on it (~3 min on 2 CPU cores)."""
    from trainpilot.api import train as run_training
    from trainpilot.demo import DEMO_CONFIG, make_demo_dataset

    data_dir = make_demo_dataset(runs_dir / "_demo_dataset")
    result = run_training({**DEMO_CONFIG, "data_dir": str(data_dir)}, overrides=list(set_ or []), runs_dir=runs_dir,
                          quiet=quiet, json_logs=json_logs, console=_console(quiet))
    _print_summary(result.summary, json_logs)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="A run directory (or a .pt checkpoint)."),
    split: str = typer.Option("test", "--split", help="test, val, train or all; for flat class folders val/train "
                                                      "are the run's seeded split, all is every image."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder; default: the run's data_dir."),
    which: str = typer.Option("best", "--checkpoint", help="best or last."),
    device: str = DEVICE,
    batch_size: int = BATCH,
) -> None:
    """Accuracy, macro-F1, a per-class table and a confusion-matrix PNG for a split (val and train of flat
    class folders are the run's own seeded split)."""
    from trainpilot.finish import write_evaluation
    from trainpilot.inference import evaluate_split, load_trained

    if split not in ("test", "val", "train", "all"):
        raise ValueError(f"--split {split!r} is not one of test, val, train, all")
    trained = load_trained(run, which=which, device=device)
    data_dir = data or Path(trained.config["data_dir"])
    result = evaluate_split(trained, data_dir, split=split, batch_size=batch_size)
    out_dir = (run if run.is_dir() else run.parent) / "reports"
    png = write_evaluation(out_dir, result).get("png")
    table = Table(title=f"{split}: accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col)
    for name, row in result["per_class"].items():
        table.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    Console().print(table)
    console.print(f"confusion matrix: {png}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A run directory (or a .pt checkpoint)."),
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders."),
    top_k: int = typer.Option(3, "--top-k", min=1),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write predictions to this CSV file."),
    sort_into: Optional[Path] = typer.Option(None, "--sort-into", help="Copy images into DIR/<class>/."),
    threshold: float = typer.Option(0.0, "--threshold", min=0.0, max=1.0,
                                    help="With --sort-into: below this top-1 probability go to DIR/_uncertain/."),
    device: str = DEVICE,
    batch_size: int = BATCH,
) -> None:
    """Classify images; print, write a CSV, or sort them into class folders."""
    from trainpilot.inference import load_trained, predict as run_predict, sort_into as run_sort, write_predictions_csv

    trained = load_trained(run, device=device)
    preds = run_predict(trained, list(inputs), top_k=top_k, batch_size=batch_size)
    if csv:
        write_predictions_csv(preds, csv)
        console.print(f"wrote {csv}")
    if sort_into:
        counts = run_sort(preds, sort_into, threshold)
        console.print(f"sorted into {sort_into}: {counts}")
    if not csv and not sort_into:
        out = Console()
        for p in preds:
            if p.get("error"):
                out.print(f"{p['path']}: [red]{p['error']}[/]", highlight=False)
            else:
                out.print(f"{p['path']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}" for t in p["top"]), highlight=False)


@app.command()
def export(
    run: Path = typer.Argument(..., help="A run directory (or a .pt checkpoint)."),
    format: str = typer.Option("onnx", "--format", help="Only onnx."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file; default RUN/export/model.onnx."),
) -> None:
    """Export the best model to ONNX and verify it with onnxruntime against PyTorch."""
    from trainpilot.export import export_onnx
    from trainpilot.inference import load_trained

    if format != "onnx":
        raise ValueError(f"--format {format!r} is not supported; use --format onnx")
    trained = load_trained(run)
    out = out or (run if run.is_dir() else run.parent) / "export" / "model.onnx"
    result = export_onnx(trained, out)
    console.print(f"exported {result['path']} (verified with onnxruntime: max |logit diff| "
                  f"{result['max_abs_diff']:.2e}, top-1 agreement {result['top1_agreement']:.0%})")


@app.command("config")
def config_cmd(
    file: Optional[Path] = typer.Argument(None, help="Validate this config and print it resolved."),
    set_: Optional[list[str]] = SET,
    markdown: bool = typer.Option(False, "--markdown", help="Print the config reference as a Markdown table."),
) -> None:
    """Show every config key with its default, bounds and help, or validate a config file."""
    from trainpilot.config import load_config
    from trainpilot.config_reference import reference_markdown

    if markdown or (file is None and not set_):
        print(reference_markdown())
        return
    cfg = load_config(file, list(set_ or []))
    print(json.dumps(cfg.to_dict(), ensure_ascii=False, indent=2))


def _console(quiet: bool) -> Console:
    return Console(stderr=True, quiet=quiet, soft_wrap=True)


def _print_summary(summary: dict, json_logs: bool) -> None:
    if "run_dir" not in summary:  # a torchrun rank other than 0: rank 0 prints the run's summary
        return
    if json_logs:
        print(json.dumps({"event": "summary", **summary}, ensure_ascii=False))
        return
    lines = [f"run directory   {summary.get('run_dir')}",
             f"best checkpoint {summary.get('best_checkpoint')}  (epoch {summary.get('best_epoch')}, "
             f"{summary.get('monitor')} {summary.get('best_value', 0):.4f}, {summary.get('best_source')} weights)"]
    if summary.get("tensorboard"):
        lines.append(f"tensorboard     tensorboard --logdir {summary['tensorboard']}")
    if summary.get("copied"):
        lines.append("copied to       " + ", ".join(summary["copied"]))
    from trainpilot.runs import Run

    run = Run(Path(str(summary.get("run_dir"))))
    latest = run.adjustments
    if latest:
        changed = sum(1 for r in latest if r.get("changes"))
        lines.append(f"tuning          analyses {len(latest)}, with changes {changed}; reports in {run.root / 'reports'}")
    flips = summary.get("test_time_augmentation")
    if flips:
        lines.append(f"test-time flips {'yes' if flips['used'] else 'no'} ({flips['reason']})")
    adj = summary.get("logit_adjustment")
    if adj:
        shown = (f"tau {adj['tau']:g} ({adj['reason']})" if adj["tau"] else f"none ({adj['reason']})")
        lines.append(f"class prior     {shown}")
    if summary.get("label_filter"):  # one note per scoring: the latest says what the last epochs trained on
        lines.append(f"label filter    {summary['label_filter'][-1]}")
    for split, m in (summary.get("final") or {}).items():
        lines.append(f"best.pt on {split:<5}accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f} "
                     f"({m['num_images']} images)")
    sus = summary.get("suspect_labels")
    if sus and sus["count"]:
        lines.append(f"suspect labels  {sus['count']} of {sus['images']} training images ({sus['share']:.1%}) are "
                     f"confidently called another class: {Path(str(summary.get('run_dir'))) / sus['file']}")
        if sus.get("weak_model"):
            lines.append("                (over a third: the model has not learned these classes yet, so this list "
                         "says little about the labels; train longer first)")
    if summary.get("summary_html"):
        lines.append(f"summary         {summary['summary_html']}")
    lines.append(f"stopped         {summary.get('stop_reason')}")
    if summary.get("skipped_files"):
        lines.append(f"skipped files   {summary['skipped_files']} (listed in run.json)")
    console.print("\n".join(lines), highlight=False)


def _register_optional_commands() -> None:
    # Tuning and LLM commands live with their own modules; they register here when present.
    for module in ("trainpilot.tuning.cli", "trainpilot.tuning.llm_check", "trainpilot.runs_cli", "trainpilot.ui.cli",
                   "trainpilot.search.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.register(app)


def main() -> None:
    """Entry point: run the app, turning user mistakes into one-line errors."""
    from trainpilot.config import ConfigError

    _register_optional_commands()
    user_errors: tuple[type[BaseException], ...] = (ConfigError, ValueError, FileNotFoundError, PermissionError)
    try:
        from trainpilot.data.folder import DatasetError
        from trainpilot.llm.base import LLMError
        user_errors += (DatasetError, LLMError)
    except ImportError:
        pass
    try:
        code = app(standalone_mode=False)  # typer turns KeyboardInterrupt into a returned 130 here
        if isinstance(code, int) and code:
            if code == 130:
                console.print("aborted")
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted")
        sys.exit(130)
    except __import__("click").ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except user_errors as exc:
        _user_error(exc)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        _user_error(exc)


def _user_error(exc: BaseException) -> None:
    if os.environ.get("TRAINPILOT_DEBUG") == "1":
        raise exc
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror and not exc.filename and str(exc).startswith("["):
        message = exc.strerror  # "[Errno 28] ..." -> the sentence itself
    console.print(f"[red]error:[/] {message}", highlight=False)
    sys.exit(2)


if __name__ == "__main__":
    main()
