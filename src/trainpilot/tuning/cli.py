"""`trainpilot report | analyze | approve | reject`: the tuning commands that work on a run directory."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from trainpilot.config import build_config
from trainpilot.engine.rundir import append_jsonl, read_jsonl, resolve_run_dir
from trainpilot.reports.data import load_adjustments

console = Console(stderr=True, soft_wrap=True)


def _latest_records(run_dir: Path) -> dict[str, dict]:
    return {r["adj_id"]: r for r in load_adjustments(run_dir / "adjustments.jsonl")}


def _run_config(run_dir: Path):
    path = run_dir / "config.resolved.json"
    if not path.exists():
        raise ValueError(f"'{run_dir}' has no config.resolved.json; is it a trainpilot run directory?")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("model_name_resolved", None)
    return build_config(data)


def report(run: Path = typer.Argument(..., help="A run directory."),
           lang: Optional[str] = typer.Option(None, "--lang", help="zh or en; default: the run's report_language.")) -> None:
    """Rebuild every adjustment report from the run's files, and write reports/summary.html."""
    from trainpilot.reports import write_summary_html
    from trainpilot.reports.markdown import write_adjustment_report

    rd = resolve_run_dir(run)
    cfg = _run_config(rd.root)
    language = lang or cfg.intelligent_training.report_language
    history = read_jsonl(rd.metrics)
    records = _latest_records(rd.root)
    written = [write_adjustment_report(rd.reports, r, history, language)[0] for r in records.values()
               if r.get("changes") or r.get("rejected") or r.get("status") in ("recorded", "stale")]
    html = write_summary_html(rd.root, language)
    console.print(f"rebuilt {len(written)} adjustment report(s) in {rd.reports}\nsummary: {html}", highlight=False)


def analyze(run: Path = typer.Argument(..., help="A finished or running run directory."),
            advisor: Optional[str] = typer.Option(None, "--advisor", help="rules, llm or hybrid; default: the run's."),
            lang: Optional[str] = typer.Option(None, "--lang", help="zh or en.")) -> None:
    """Diagnose a run from its metrics and write a proposal report, without training."""
    from trainpilot.reports.markdown import write_adjustment_report
    from trainpilot.tuning.actions import validate_proposal
    from trainpilot.tuning.advisors import AdvisorContext, create_advisor, reverted_changes
    from trainpilot.tuning.controller import new_adj_id
    from trainpilot.tuning.diagnosis import diagnose

    rd = resolve_run_dir(run)
    cfg = _run_config(rd.root)
    it = cfg.intelligent_training.model_copy(update={k: v for k, v in (("advisor", advisor), ("report_language", lang)) if v})
    history = read_jsonl(rd.metrics)
    if not history:
        raise ValueError(f"'{rd.root}' has no metrics yet; analyze it after its first epoch")
    info = json.loads((rd.root / "run.json").read_text(encoding="utf-8")) if (rd.root / "run.json").exists() else {}
    classes, counts = info.get("classes", []), info.get("train_counts", [])
    past = list(_latest_records(rd.root).values())
    diagnosis = diagnose(history, cfg, counts, lang=it.report_language)
    ctx = AdvisorContext(cfg=cfg, it_cfg=it, history=history, diagnosis=diagnosis, class_names=classes,
                         train_counts=counts, past_interventions=past, language=it.report_language)
    proposal = create_advisor(it, cache_dir=rd.root / "llm_cache").advise(ctx)
    validated = validate_proposal(proposal, cfg, it, counts, classes, reverted_changes(past))
    epoch = max(int(r.get("epoch", 0)) for r in history)
    record = {"adj_id": new_adj_id(), "session_id": rd.session_id, "created_at": datetime.now().isoformat(),
              "epoch": epoch, "advisor": proposal.advisor or it.advisor, "advisor_detail": proposal.detail,
              "mode": "analyze", "trigger": "manual",
              "reason": f"Manual analysis (trainpilot analyze) of the whole history up to epoch {epoch}.",
              "diagnosis": diagnosis.to_dict(), "analysis_text": proposal.analysis,
              "raw_output": proposal.raw_output or proposal.analysis, "changes": validated.changes,
              "rejected": validated.rejected, "notes": validated.notes, "status": "recorded", "outcome": None,
              "config_before": cfg.to_dict(), "config_after": (validated.new_config or cfg).to_dict()}
    append_jsonl(rd.adjustments, record)
    md, _ = write_adjustment_report(rd.reports, record, history, it.report_language)
    states = ", ".join(s.state for s in diagnosis.states) or "healthy"
    changes = ", ".join(f"{c['key']}: {c['old']} -> {c['new']}" for c in validated.changes) or "none"
    console.print(f"diagnosis: {states}\nproposed changes: {changes}\nreport: {md}", highlight=False)


def _decide(run: Path, adj_id: str, decision: str) -> None:
    rd = resolve_run_dir(run)
    records = _latest_records(rd.root)
    if adj_id not in records:
        known = ", ".join(r for r, v in records.items() if v.get("status") == "proposed") or "none"
        raise ValueError(f"no adjustment '{adj_id}' in {rd.root}; proposals waiting for a decision: {known}")
    status = records[adj_id].get("status")
    if status != "proposed":
        raise ValueError(f"adjustment '{adj_id}' is '{status}', not waiting for a decision")
    append_jsonl(rd.root / "decisions.jsonl", {"adj_id": adj_id, "decision": decision, "at": time.time()})
    console.print(f"{decision}d {adj_id}; the run picks this up at its next epoch boundary", highlight=False)


def approve(run: Path = typer.Argument(...), adj_id: str = typer.Argument(..., help="The adjustment id (adj_...).")) -> None:
    """Approve a proposal of a run in suggest mode; it is applied at the next epoch boundary."""
    _decide(run, adj_id, "approve")


def reject(run: Path = typer.Argument(...), adj_id: str = typer.Argument(..., help="The adjustment id (adj_...).")) -> None:
    """Reject a proposal of a run in suggest mode."""
    _decide(run, adj_id, "reject")


def register(app: typer.Typer) -> None:
    for fn in (report, analyze, approve, reject):
        app.command(fn.__name__)(fn)
