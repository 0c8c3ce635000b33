"""Markdown report of one parameter adjustment, plus its JSON twin."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from trainpilot.tuning.messages import reason_in, render_findings, state_label

from .data import atomic_write_text, epoch_rows, last_val
from .fmt import change_type, dumps_clean, fence, fmt_human, fmt_metric, fmt_value, md_cell
from .i18n import analysis_heading, advisor_key, label, norm_lang, tr

MAX_HISTORY_ROWS = 50
_BR = "  "  # markdown hard line break


def _created(record: dict) -> datetime | None:
    raw = record.get("created_at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
    m = re.search(r"(\d{8}_\d{6})", str(record.get("adj_id") or ""))
    return datetime.strptime(m.group(1), "%Y%m%d_%H%M%S") if m else None


def _when(record: dict) -> str:
    dt = _created(record)
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else str(record.get("created_at") or "-")


def _code(v: Any) -> str:
    s = fmt_value(v)
    return f"`` {s} ``" if "`" in s else f"`{s}`"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def demote_headings(text: str, top: int = 4) -> str:
    """Shift the markdown headings of ``text`` (outside code fences) so the
    highest becomes level ``top`` (levels capped at 6): an advisor's text cannot
    break the report's own section structure."""
    levels = [len(m.group(1)) for m in re.finditer(r"^(#{1,6})\s", text, re.M)]
    by = max(0, top - min(levels)) if levels else 0
    out, fenced = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            mark = m.group(1)[0]
            fenced = None if fenced == mark else (fenced or mark)
        elif fenced is None:
            h = re.match(r"^(#{1,6})(\s)", line)
            if h:
                line = "#" * min(6, len(h.group(1)) + by) + line[len(h.group(1)):]
        out.append(line)
    return "\n".join(out)


def _header(r: dict, L: str) -> str:
    adj = str(r.get("adj_id") or "-")
    report_id = r.get("report_id") or ("report_" + adj[4:] if adj.startswith("adj_") else f"report_{adj}")
    fields = [("generated_at", _when(r)), ("report_id", report_id),
              ("session_id", r.get("session_id") or "-"), ("adj_id", adj)]
    if r.get("epoch") is not None:
        fields.append(("epoch", r["epoch"]))
    if r.get("mode"):
        fields.append(("mode", label(L, "mode_", r["mode"])))
    if r.get("trigger"):
        fields.append(("trigger", label(L, "trigger_", r["trigger"])))
    body = "\n".join(f"**{tr(L, k)}**: {fmt_value(v)}{_BR}" for k, v in fields)
    return f"{tr(L, 'title')}\n\n{body.rstrip()}"


def _diagnosis(r: dict, L: str) -> str:
    diag = r.get("diagnosis") or {}
    out = [tr(L, "h_diagnosis"), ""]
    states = [s for s in diag.get("states") or [] if isinstance(s, dict)]
    if not states:
        out.append(tr(L, "no_diagnosis"))
    for s in states:
        sev = f"（{tr(L, 'severity')} {fmt_value(s.get('severity'))}）" if L == "zh" else \
            f" ({tr(L, 'severity')} {fmt_value(s.get('severity'))})"
        out.append(f"- **{state_label(str(s.get('state', '?')), L)}**{sev if s.get('severity') is not None else ''}")
        out += [f"  - {e}" for e in render_findings(s, L)]
    feats = diag.get("features") or {}
    if feats:
        pairs = " · ".join(f"{k} = {_code(v)}" for k, v in feats.items())
        out += ["", f"**{tr(L, 'features')}**: {pairs}"]
    return "\n".join(out)


def _class_weights(r: dict, history: list[dict], L: str) -> str | None:
    after = (r.get("config_after") or {}).get("class_weights")
    before = (r.get("config_before") or {}).get("class_weights")
    if not after:
        return None
    val = last_val(history) or {}
    names = list(val.get("class_names") or [])
    def as_map(w):
        if isinstance(w, dict):
            return {str(k): v for k, v in w.items()}
        if isinstance(w, (list, tuple)):
            return {(names[i] if i < len(names) else str(i)): v for i, v in enumerate(w)}
        return {}
    a, b = as_map(after), as_map(before)
    support = {k: (v or {}).get("support") for k, v in (val.get("per_class") or {}).items()}
    changed = bool(b) and any(b.get(k) != v for k, v in a.items())
    head = [tr(L, "class"), tr(L, "weight")] if not changed else [tr(L, "class"), tr(L, "old"), tr(L, "new")]
    rows = [[k, fmt_value(v)] if not changed else [k, fmt_value(b.get(k)), fmt_value(v)] for k, v in a.items()]
    if any(support.get(k) is not None for k in a):
        head.append(tr(L, "support"))
        rows = [row + [fmt_metric(support.get(row[0]))] for row in rows]
    on = (r.get("config_after") or {}).get("use_class_weights")
    note = "" if on is None else (f"（{tr(L, 'class_weights_on' if on else 'class_weights_off')}）" if L == "zh"
                                  else f" ({tr(L, 'class_weights_on' if on else 'class_weights_off')})")
    return f"**{tr(L, 'class_weights')}**{note}:\n\n" + _table(head, rows)


def _changes(r: dict, history: list[dict], L: str) -> str:
    out = [tr(L, "h_changes")]
    changes = [c for c in r.get("changes") or [] if isinstance(c, dict)]
    if not changes:
        out += ["", tr(L, "no_changes")]
    for c in changes:
        old, new = c.get("old"), c.get("new")
        out += ["", f"### {c.get('key', '?')}",
                f"- **{tr(L, 'old')}**: {_code(old)}",
                f"- **{tr(L, 'new')}**: {_code(new)}",
                f"- **{tr(L, 'kind')}**: {change_type(old, new, L)}"]
        if c.get("source") == "auto_fix":
            out.append(f"- **{tr(L, 'auto_fixes')}**: {reason_in(c, L, '-')}")
        elif c.get("reason"):
            out.append(f"- **{tr(L, 'change_reason')}**: {c['reason']}")
        if c.get("apply") in ("live", "restart"):
            out.append(f"- **{tr(L, 'apply')}**: {tr(L, 'apply_' + c['apply'])}")
    cw = _class_weights(r, history, L)
    if cw:
        out += ["", cw]
    return "\n".join(out)


def _rejected(r: dict, L: str) -> str:
    out = [tr(L, "h_rejected"), ""]
    rejected = [x for x in r.get("rejected") or [] if isinstance(x, dict)]
    out += [f"- **{x.get('key', '?')}** = {_code(x.get('value'))} — {tr(L, 'rejected_reason')}: "
            f"{reason_in(x, L, '-')}" for x in rejected] or [tr(L, "no_rejected")]
    fixes = [c for c in r.get("changes") or [] if isinstance(c, dict) and c.get("source") == "auto_fix"]
    out += ["", f"### {tr(L, 'auto_fixes')}", ""]
    out += [f"- **{c.get('key', '?')}**: {_code(c.get('old'))} → {_code(c.get('new'))} — "
            f"{reason_in(c, L, '-')}" for c in fixes] or [tr(L, "no_auto_fixes")]
    return "\n".join(out)


def _analysis(r: dict, L: str) -> str:
    adv = advisor_key(r.get("advisor"))
    det = r.get("advisor_detail") or {}
    bits = []
    for key, name, unit in (("backend", "backend", ""), ("model", "model", ""), ("latency_s", "latency", " s")):
        if det.get(key) not in (None, ""):
            bits.append(f"{tr(L, name)} {fmt_value(det[key])}{unit}")
    if det.get("prompt_tokens") is not None or det.get("completion_tokens") is not None:
        bits.append(f"{tr(L, 'tokens')} {fmt_value(det.get('prompt_tokens'))} + "
                    f"{fmt_value(det.get('completion_tokens'))}")
    info = tr(L, "advisor_" + adv) + ((" — " + ("，" if L == "zh" else ", ").join(bits)) if bits else "")
    out = [analysis_heading(adv, L), "", f"**{tr(L, 'advisor_info')}**: {info}"]
    if det.get("fallback"):
        out += ["", f"> **{tr(L, 'fallback')}**: {det['fallback']}"]
    out += ["", f"**{tr(L, 'analysis_reason')}**: {reason_in(r, L, '-')}", "",
            f"**{tr(L, 'analysis_detail')}**:", ""]
    text = str(r.get("analysis_text") or "").strip()
    out.append(demote_headings(text) if text else tr(L, "no_analysis"))
    raw = str(r.get("raw_output") or "").strip()
    if raw and raw != text:
        out += ["", f"<details><summary>{tr(L, 'raw_output')}</summary>", "", fence(raw), "", "</details>"]
    return "\n".join(out)


def _metrics(r: dict, history: list[dict], L: str) -> str:
    out = [tr(L, "h_metrics"), ""]
    rows = epoch_rows(history)
    if not rows:
        return "\n".join(out + [tr(L, "no_history")])
    cur = next((x for x in rows if x["epoch"] == r.get("epoch")), rows[-1])
    shown = rows[-MAX_HISTORY_ROWS:]
    table = [[f"**{x['epoch']}**" if x is cur else x["epoch"]] +
             [fmt_metric(x[k]) for k in ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1")] +
             [fmt_human(x["lr"])] for x in shown]
    cols = ["col_epoch", "col_train_loss", "col_train_acc", "col_val_loss", "col_val_acc", "col_val_f1", "col_lr"]
    out += [f"### {tr(L, 'history')}", ""]
    if len(rows) > len(shown):
        out += [tr(L, "history_tail", n=len(shown), total=len(rows)), ""]
    out += [_table([tr(L, c) for c in cols], table), "", f"### {tr(L, 'current_state')}", ""]
    t, v = cur["train"] or {}, cur["val"] or {}
    state = [("col_epoch", cur["epoch"]), ("col_train_loss", cur["train_loss"]), ("col_train_acc", cur["train_acc"]),
             ("col_val_loss", cur["val_loss"]), ("col_val_acc", cur["val_acc"]), ("col_val_f1", cur["val_f1"]),
             ("m_precision", v.get("precision")), ("m_recall", v.get("recall")), ("col_lr", cur["lr"]),
             ("m_grad_mean", t.get("grad_norm_mean")), ("m_grad_max", t.get("grad_norm_max")),
             ("m_nonfinite", t.get("nonfinite_steps")), ("m_ips", t.get("images_per_s")),
             ("m_epoch_s", t.get("epoch_seconds")), ("m_ema_loss", v.get("ema_loss")),
             ("m_ema_acc", v.get("ema_accuracy")), ("m_ema_f1", v.get("ema_macro_f1"))]
    out.append(_table([tr(L, "metric"), tr(L, "value")],
                      [[tr(L, k), fmt_human(val) if k == "col_lr" else fmt_metric(val)] for k, val in state
                       if val is not None]))
    per = v.get("per_class") or {}
    if isinstance(per, dict) and per:
        out += ["", f"### {tr(L, 'per_class')}", ""]
        out.append(_table([tr(L, k) for k in ("class", "precision", "recall", "f1", "support")],
                          [[name, fmt_metric(m.get("precision")), fmt_metric(m.get("recall")),
                            fmt_metric(m.get("f1")), fmt_metric(m.get("support"))]
                           for name, m in per.items() if isinstance(m, dict)]))
    return "\n".join(out)


def _config(r: dict, L: str) -> str:
    return "\n".join([tr(L, "h_config"), "", tr(L, "config_before"), fence(dumps_clean(r.get("config_before") or {}), "json"),
                      "", tr(L, "config_after"), fence(dumps_clean(r.get("config_after") or {}), "json")])


def pending_epochs(r: dict) -> int | None:
    """Epochs until an applied adjustment is evaluated, when the record says."""
    for key in ("evaluate_after_epochs", "eval_epochs", "eval_window"):
        if isinstance(r.get(key), int) and not isinstance(r.get(key), bool):
            return r[key]
    at, ep = r.get("evaluate_at_epoch"), r.get("epoch")
    if isinstance(at, int) and isinstance(ep, int) and at > ep:
        return at - ep
    return None


def outcome_lines(r: dict, L: str) -> list[str]:
    """One or two lines describing whether the adjustment was kept or reverted."""
    o, status = r.get("outcome"), str(r.get("status") or "")
    if isinstance(o, dict) and o.get("decision"):
        delta = o.get("delta")
        d = fmt_value(delta) if not isinstance(delta, (int, float)) or delta < 0 else "+" + fmt_value(delta)
        metric = str(o.get("metric", "-")) + (tr(L, "prior_corrected") if o.get("prior_corrected") else "")
        return [label(L, "outcome_", o["decision"]),
                tr(L, "outcome_line_best" if o.get("rule") == "new_best" else "outcome_line", metric=metric, before=fmt_value(o.get("before")),
                   after=fmt_value(o.get("after")), delta=d, margin=fmt_value(o.get("noise_margin")),
                   epoch=fmt_value(o.get("evaluated_at_epoch")))]
    if status in ("kept", "reverted"):
        return [tr(L, "outcome_" + status)]
    if status in ("applied", "approved"):
        n = pending_epochs(r)
        return [tr(L, "pending_n", n=n) if n else tr(L, "pending")]
    return [tr(L, "outcome_not_applied", status=label(L, "status_", status or "-"))]


def _summary(r: dict, L: str) -> str:
    changes = [c for c in r.get("changes") or [] if isinstance(c, dict)]
    n_auto = sum(c.get("source") == "auto_fix" for c in changes)
    out = [tr(L, "h_summary"), "",
           "- " + tr(L, "sum_changes", n=len(changes)) + (tr(L, "sum_auto", n=n_auto) if n_auto else "")]
    if r.get("rejected"):
        out.append("- " + tr(L, "sum_rejected", n=len(r["rejected"])))
    out.append("- " + tr(L, "sum_advisor", advisor=tr(L, "advisor_" + advisor_key(r.get("advisor")))))
    status = str(r.get("status") or "-")
    out.append(f"- {tr(L, 'sum_status')}: {label(L, 'status_', status)}")
    out.append(f"- {tr(L, 'sum_generated')}: {_when(r)}")
    return "\n".join(out)


def render_adjustment(record: dict, history: list[dict], lang: str = "zh") -> str:
    """The full markdown report of one adjustment record."""
    L, r, h = norm_lang(lang), record or {}, history or []
    why = reason_in(r, L, "-")
    parts = [_header(r, L), f"{tr(L, 'h_reason')}\n\n{why}", _diagnosis(r, L),
             _changes(r, h, L), _rejected(r, L), _analysis(r, L), _metrics(r, h, L), _config(r, L),
             tr(L, "h_outcome") + "\n\n" + "\n".join(x + _BR for x in outcome_lines(r, L)).rstrip(),
             _summary(r, L), "---\n" + tr(L, "footer")]
    return "\n\n".join(parts) + "\n"


def report_stem(record: dict) -> str:
    """``parameter_tuning_report_<YYYYmmdd_HHMMSS>_<adj_id>`` from the record's creation time."""
    dt = _created(record)
    stamp = dt.strftime("%Y%m%d_%H%M%S") if dt else "00000000_000000"
    adj = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(record.get("adj_id") or "adj")).strip("._") or "adj"
    return f"parameter_tuning_report_{stamp}_{adj}"


def write_adjustment_report(reports_dir: Path, record: dict, history: list[dict],
                            lang: str = "zh") -> tuple[Path, Path]:
    """Write the markdown report and its JSON twin; returns ``(md_path, json_path)``.

    The names come from the record (``created_at`` and ``adj_id``), so writing
    the same record again (e.g. once its outcome is known) replaces both files.
    """
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = report_stem(record)
    md_path, json_path = reports_dir / f"{stem}.md", reports_dir / f"{stem}.json"
    L = norm_lang(lang)
    atomic_write_text(md_path, render_adjustment(record, history, L))
    atomic_write_text(json_path, dumps_clean({**record, "language": L}) + "\n")
    return md_path, json_path
