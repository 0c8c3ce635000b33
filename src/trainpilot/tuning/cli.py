"""`trainpilot report | analyze | approve | reject`: the tuning commands that work on a run directory."""

from __future__ import annotations

import fcntl
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from trainpilot.engine.events import AdjustmentStatus
from trainpilot.jsonio import append_jsonl
from trainpilot.runs import Run
from trainpilot.text import recorded_notes
from trainpilot.tuning.messages import Msg, recorded

console = Console(stderr=True, soft_wrap=True)
REPORTED = (AdjustmentStatus.RECORDED, AdjustmentStatus.STALE)


def report(run: Path = typer.Argument(..., help="A run directory."),
           lang: Optional[str] = typer.Option(None, "--lang", help="zh or en; default: the run's report_language.")) -> None:
    """Rebuild every adjustment report from the run's files, and write reports/summary.html."""
    from trainpilot.reports import write_summary_html
    from trainpilot.reports.markdown import write_adjustment_report

    rd = Run.open(run)
    cfg = rd.train_config()
    language = lang or cfg.intelligent_training.report_language
    history, reports = rd.records, rd.root / "reports"
    written = [write_adjustment_report(reports, r, history, language)[0] for r in rd.adjustments
               if r.get("changes") or r.get("rejected") or r.get("status") in REPORTED]
    html = write_summary_html(rd.root, language)
    console.print(f"rebuilt {len(written)} adjustment report(s) in {reports}\nsummary: {html}", highlight=False)


def analyze(run: Path = typer.Argument(..., help="A finished or running run directory."),
            advisor: Optional[str] = typer.Option(None, "--advisor", help="rules, llm or hybrid; default: the run's."),
            lang: Optional[str] = typer.Option(None, "--lang", help="zh or en.")) -> None:
    """Diagnose a run from its metrics and write a proposal report, without training."""
    from trainpilot.reports.markdown import write_adjustment_report
    from trainpilot.tuning.actions import loss_changed_at, validate_proposal
    from trainpilot.tuning.advisors import AdvisorContext, create_advisor, reverted_changes
    from trainpilot.tuning.controller import new_adj_id
    from trainpilot.tuning.diagnosis import diagnose

    rd = Run.open(run)
    cfg = rd.train_config()
    it = cfg.intelligent_training.model_copy(update={k: v for k, v in (("advisor", advisor), ("report_language", lang)) if v})
    history = rd.records
    if not history:
        raise ValueError(f"'{rd.root}' has no metrics yet; analyze it after its first epoch")
    classes, counts = rd.classes, rd.train_counts
    past = rd.adjustments
    diagnosis = diagnose(history, cfg, counts, lang=it.report_language, loss_since=loss_changed_at(past))
    ctx = AdvisorContext(cfg=cfg, it_cfg=it, history=history, diagnosis=diagnosis, class_names=classes,
                         train_counts=counts, past_interventions=past, language=it.report_language)
    proposal = create_advisor(it, cache_dir=rd.root / "llm_cache").advise(ctx)
    validated = validate_proposal(proposal, cfg, it, counts, classes, reverted_changes(past))
    epoch = rd.rows[-1].epoch
    why = Msg("reason.manual", {"at": epoch})
    record = {"adj_id": new_adj_id(), "session_id": rd.id, "created_at": datetime.now().isoformat(),
              "epoch": epoch, "advisor": proposal.advisor or it.advisor, "advisor_detail": proposal.detail,
              "mode": "analyze", "trigger": "manual",
              **recorded(why),
              "diagnosis": diagnosis.to_dict(), "analysis_text": proposal.analysis,
              "raw_output": proposal.raw_output or proposal.analysis, "changes": validated.changes,
              "rejected": validated.rejected, **recorded_notes(validated.notes), "status": str(AdjustmentStatus.RECORDED),
              "outcome": None,
              "config_before": cfg.to_dict(), "config_after": (validated.new_config or cfg).to_dict()}
    append_jsonl(rd.root / "adjustments.jsonl", record)
    md, _ = write_adjustment_report(rd.root / "reports", record, history, it.report_language)
    states = ", ".join(s.state for s in diagnosis.states) or "healthy"
    changes = ", ".join(f"{c['key']}: {c['old']} -> {c['new']}" for c in validated.changes) or "none"
    console.print(f"diagnosis: {states}\nproposed changes: {changes}\nreport: {md}", highlight=False)


class DecisionError(ValueError):
    """A decision that cannot be recorded: an unknown id, or a proposal no longer waiting (one line)."""


def decide(run: Run, adj_id: str, decision: str, note: str = "", by: str = "cli") -> dict:
    """Record a suggest-mode decision (``approve`` or ``reject``) for the run to pick up at its next epoch
    boundary; the one way a decision is made, from the CLI or the dashboard (``by``). A proposal is decided
    once: one that is no longer proposed, or already has a decision waiting, is refused. Returns the record."""
    if decision not in ("approve", "reject"):
        raise DecisionError(f"decision {decision!r} is not approve or reject")
    path = run.root / "decisions.jsonl"
    with open(run.root / ".decisions.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two front ends deciding at once: one wins, the other is refused
        record = run.adjustment(adj_id)
        if record is None:
            known = ", ".join(a["adj_id"] for a in run.adjustments if a.get("status") == AdjustmentStatus.PROPOSED)
            raise DecisionError(f"no adjustment '{adj_id}' in {run.root}; proposals waiting for a decision: "
                                f"{known or 'none'}")
        status = record.get("status")
        if status != AdjustmentStatus.PROPOSED:
            raise DecisionError(f"adjustment '{adj_id}' is '{status}', not waiting for a decision")
        if run.status.state in ("completed", "pruned"):
            raise DecisionError(f"adjustment '{adj_id}' can no longer be decided: run '{run.id}' is "
                                f"{run.status.state}, so no epoch is left to apply it at")
        earlier = run.decision(adj_id)
        if earlier is not None:
            when = datetime.fromtimestamp(float(earlier.get("at") or 0)).strftime("%Y-%m-%d %H:%M:%S")
            raise DecisionError(f"adjustment '{adj_id}' was already {earlier.get('decision')}d by "
                                f"{earlier.get('by') or 'cli'} at {when}; the run picks that up at its next epoch")
        entry = {"adj_id": adj_id, "decision": decision, "at": time.time(), "by": by, "note": str(note or "")[:2000]}
        append_jsonl(path, entry)
    return entry


def _decide(run: Path, adj_id: str, decision: str, note: str = "") -> None:
    decide(Run.open(run), adj_id, decision, note=note if isinstance(note, str) else "", by="cli")
    console.print(f"{decision}d {adj_id}; the run picks this up at its next epoch boundary", highlight=False)


NOTE = typer.Option("", "--note", help="Why; shown with the decision in the dashboard.")


def approve(run: Path = typer.Argument(...), adj_id: str = typer.Argument(..., help="The adjustment id (adj_...)."),
            note: str = NOTE) -> None:
    """Approve a proposal of a run in suggest mode; it is applied at the next epoch boundary."""
    _decide(run, adj_id, "approve", note)


def reject(run: Path = typer.Argument(...), adj_id: str = typer.Argument(..., help="The adjustment id (adj_...)."),
           note: str = NOTE) -> None:
    """Reject a proposal of a run in suggest mode."""
    _decide(run, adj_id, "reject", note)


def register(app: typer.Typer) -> None:
    for fn in (report, analyze, approve, reject):
        app.command(fn.__name__)(fn)
