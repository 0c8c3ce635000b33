"""`trainpilot llm check` (with the tuning commands: it drives an advisor, so the llm package never imports tuning): is the configured LLM reachable, how fast, and does it give usable proposals?"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

llm_app = typer.Typer(help="LLM backends for the tuning controller.", no_args_is_help=True)


def _canned_history() -> list[dict]:
    """Six epochs of a run that is clearly overfitting, for a sample proposal."""
    rows = []
    for e in range(1, 7):
        train_loss, val_loss = 1.2 * 0.7 ** e, 0.9 + 0.08 * max(0, e - 3)
        rows.append({"epoch": e, "phase": "train", "loss": train_loss, "accuracy": min(0.99, 0.5 + 0.09 * e),
                     "lr": 1e-3, "grad_norm_mean": 1.0, "grad_norm_max": 2.0, "nonfinite_steps": 0})
        rows.append({"epoch": e, "phase": "val", "loss": val_loss, "accuracy": 0.7 - 0.01 * max(0, e - 3),
                     "macro_f1": 0.68, "train_loss": train_loss, "val_loss": val_loss, "lr": 1e-3,
                     "val_accuracy": 0.7, "val_macro_f1": 0.68, "per_class": {}, "ema_accuracy": None})
    return rows


@llm_app.command("check")
def check(
    llm: Optional[str] = typer.Option(None, "--llm", help="A preset: openai, deepseek, qwen, moonshot, openrouter, "
                                                          "ollama, llamacpp-server, local-gguf."),
    base_url: Optional[str] = typer.Option(None, "--base-url"),
    model: Optional[str] = typer.Option(None, "--model"),
    gguf: Optional[Path] = typer.Option(None, "--gguf", help="A local GGUF file (in-process llama.cpp)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Take intelligent_training.llm from this config."),
    lang: str = typer.Option("en", "--lang", help="Prompt language, zh or en."),
) -> None:
    """Reachability, model, latency, structured output, and one validated sample proposal."""
    from trainpilot.config import build_config, load_config
    from trainpilot.llm.factory import create_client
    from trainpilot.tuning.actions import validate_proposal
    from trainpilot.tuning.advisors import AdvisorContext, LLMAdvisor, build_messages
    from trainpilot.tuning.advisors.llm import AdvisorUnavailable
    from trainpilot.tuning.actions import PROPOSAL_JSON_SCHEMA
    from trainpilot.tuning.diagnosis import diagnose

    cfg = load_config(config) if config else build_config({})
    settings = cfg.intelligent_training.llm.model_copy(update={k: v for k, v in (
        ("preset", llm), ("base_url", base_url), ("model", model), ("gguf_path", str(gguf) if gguf else None)) if v})
    settings = type(settings).model_validate(settings.model_dump())
    client = create_client(settings)
    out = Console()
    table = Table(title="trainpilot llm check", show_header=False)
    resolved = settings.resolved()
    table.add_row("backend", client.name)
    table.add_row("endpoint", resolved.base_url or str(resolved.gguf_path))
    start = time.perf_counter()
    ping = client.complete([{"role": "user", "content": "Reply with the single word: ok"}], None)
    table.add_row("reachable", "yes")
    table.add_row("model", ping.model)
    table.add_row("latency (short prompt)", f"{time.perf_counter() - start:.2f} s")

    it = cfg.intelligent_training.model_copy(update={"report_language": lang, "llm": settings})
    history = _canned_history()
    counts, classes = [50, 50, 50], ["scratch", "stain", "dent"]
    ctx = AdvisorContext(cfg=cfg, it_cfg=it, history=history, diagnosis=diagnose(history, cfg, counts, lang=lang),
                         class_names=classes, train_counts=counts, language=lang)
    advisor = LLMAdvisor(client)
    try:
        proposal = advisor.consult(build_messages(ctx), PROPOSAL_JSON_SCHEMA)
        table.add_row("structured output", f"{proposal.detail.get('structured_mode')} (reply parsed as a proposal)")
    except AdvisorUnavailable as why:
        table.add_row("structured output", f"[red]unusable reply[/]: {why}")
        out.print(table)
        raise typer.Exit(1)
    validated = validate_proposal(proposal, cfg, it, counts, classes)
    table.add_row("sample proposal latency", f"{proposal.detail.get('latency_s', 0):.2f} s, "
                                             f"{proposal.detail.get('completion_tokens')} completion tokens")
    table.add_row("sample changes accepted", json.dumps(validated.updates, ensure_ascii=False) or "none")
    table.add_row("sample changes rejected",
                  "; ".join(f"{r['key']}: {r['reason']}" for r in validated.rejected) or "none")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
