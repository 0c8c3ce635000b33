"""`trainpilot runs [DIR]` (a table of runs) and `trainpilot runs compare A B`, over the run store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from trainpilot.reports.fmt import fmt_human, fmt_metric
from trainpilot.runs import Run, list_runs

def _out() -> Console:
    """stdout; a pipe or a file gets wide rows instead of 80 columns of wrapped cells."""
    return Console() if sys.stdout.isatty() else Console(width=200)


STATUS_STYLE = {"running": "cyan", "completed": "green", "stopped": "yellow", "crashed": "red", "pruned": "magenta"}


class _ListByDefault(TyperGroup):
    """`trainpilot runs DIR` means `trainpilot runs list DIR`; named subcommands win."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and not args[0].startswith("-")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(cls=_ListByDefault, help="List runs (trainpilot runs [DIR]) or compare two (runs compare A B).")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def run_row(run: Run) -> dict[str, Any]:
    """What the runs table shows for one run, as values."""
    cfg, status, rows = run.config, run.status, run.rows
    best, monitor = run.best(), run.monitor
    last = next((r.metric(monitor) for r in reversed(rows) if r.metric(monitor) is not None), None)
    counts = run.adjustment_counts()
    return {"run": run.id, "status": status.state, "reason": status.reason,
            "model": cfg.get("model_name_resolved") or cfg.get("model_name") or "-",
            "data": Path(str(cfg.get("data_dir") or "-")).name,
            "epochs": rows[-1].epoch if rows else 0, "num_epochs": cfg.get("num_epochs"), "monitor": monitor,
            "best": best[1] if best else None, "best_epoch": best[0] if best else None, "last": last,
            "kept": counts.get("kept", 0), "reverted": counts.get("reverted", 0), "duration_s": run.duration_s()}


@runs_app.command("list")
def list_cmd(runs_dir: Path = typer.Argument(Path("runs"), help="The folder that holds run directories.")) -> None:
    """A table of the runs in DIR: status, model, data, epochs, best/last monitored metric,
    adjustments kept/reverted, duration."""
    runs = list_runs(runs_dir)
    monitors = {run.monitor for run in runs}
    caption = f"best/last: {monitors.pop()}" if len(monitors) == 1 else "best/last: each run's monitor"
    table = Table(title=f"runs in {runs_dir}" if runs else f"no runs in {runs_dir}", caption=caption if runs else None)
    for col, just in (("run", "left"), ("status", "left"), ("model", "left"), ("data", "left"), ("epochs", "right"),
                      ("best", "right"), ("last", "right"), ("kept/reverted", "right"), ("duration", "right")):
        table.add_column(col, justify=just)
    for run in runs:
        r = run_row(run)
        style = STATUS_STYLE.get(r["status"], "")
        best = f"{fmt_metric(r['best'])} @{r['best_epoch']}" if r["best"] is not None else "-"
        table.add_row(r["run"], f"[{style}]{r['status']}[/]", r["model"], r["data"],
                      f"{r['epochs']}/{r['num_epochs'] or '?'}", best, fmt_metric(r["last"]),
                      f"{r['kept']}/{r['reverted']}", duration(r["duration_s"]))
    _out().print(table)
    from trainpilot.search.store import list_studies

    for study in list_studies(runs_dir):  # a study's trials are runs one level down
        trials = sum(1 for d in study.iterdir() if d.is_dir() and d.name.startswith("trial_"))
        _out().print(f"study {study.name}: {trials} trial run(s); trainpilot runs {study}", highlight=False)


def flat_config(d: dict, prefix: str = "") -> dict[str, Any]:
    """A config as dotted keys (``intelligent_training.mode``); class_weights stays one value."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "class_weights":
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_diff(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every key whose value differs; nested sections as dotted keys."""
    fa, fb = flat_config(a), flat_config(b)
    missing = object()
    return [(k, fa.get(k, missing), fb.get(k, missing)) for k in sorted(set(fa) | set(fb))
            if fa.get(k, missing) != fb.get(k, missing) and k not in ("timestamp",)]


def _shown(v: Any) -> str:
    if isinstance(v, float):
        return fmt_human(v, 6)
    return "(absent)" if type(v) is object else str(v)


@runs_app.command("compare")
def compare(a: Path = typer.Argument(..., help="A run directory."),
            b: Path = typer.Argument(..., help="Another run directory.")) -> None:
    """The config keys that differ between two runs, and their best metrics side by side."""
    ra, rb = Run.open(a), Run.open(b)
    out = _out()
    diff = Table(title="config differences" if (d := config_diff(ra.config, rb.config)) else "configs are identical")
    for col in ("key", ra.id, rb.id):
        diff.add_column(col)
    for key, va, vb in d:
        diff.add_row(key, _shown(va), _shown(vb))
    out.print(diff)
    metrics = Table(title="results")
    for col in ("", ra.id, rb.id):
        metrics.add_column(col, justify="right" if col else "left")
    rows = [run_row(ra), run_row(rb)]
    finals = [(r.summary or {}).get("final") or {} for r in (ra, rb)]
    lines = [("status", [r["status"] for r in rows]), ("epochs", [str(r["epochs"]) for r in rows]),
             ("monitor", [r["monitor"] for r in rows]),
             ("best", [f"{fmt_metric(r['best'])} @{r['best_epoch']}" if r["best"] is not None else "-" for r in rows]),
             ("last", [fmt_metric(r["last"]) for r in rows])]
    for split in ("val", "test"):
        for m in ("accuracy", "macro_f1"):
            values = [(f.get(split) or {}).get(m) for f in finals]
            if any(v is not None for v in values):
                lines.append((f"best.pt {split} {m}", [fmt_metric(v) for v in values]))
    lines += [("adjustments kept/reverted", [f"{r['kept']}/{r['reverted']}" for r in rows]),
              ("duration", [duration(r["duration_s"]) for r in rows])]
    for name, values in lines:
        metrics.add_row(name, *values)
    out.print(metrics)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
