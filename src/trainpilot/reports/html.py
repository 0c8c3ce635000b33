"""Self-contained HTML summary of a run: ``<run_dir>/reports/summary.html``.

Everything is inline (CSS, PNGs as base64 data URIs); the page references no
external URL, and URL-looking text from the records is written so that it
displays normally but is not a link.
"""
from __future__ import annotations

import base64
import html as _html
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from .data import atomic_write_text, epoch_rows
from .fmt import change_type, fmt_metric, fmt_value
from .i18n import label, norm_lang, tr
from .markdown import outcome_lines
from .plots import accuracy_png, confusion_png, loss_png, lr_png

_CSS = """
body{font-family:-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
 margin:0;background:#f5f6f8;color:#1f2328}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:32px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;font-size:14px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;min-width:150px}
.card .k{color:#57606a;font-size:13px}.card .v{font-size:22px;font-weight:600}
figure{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px;margin:12px 0}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:#57606a;font-size:13px;text-align:center}
table{border-collapse:collapse;background:#fff;width:100%;font-size:14px;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.kept{color:#2e7d32;font-weight:600}.reverted{color:#c62828;font-weight:600}
.muted{color:#57606a}.warn{color:#9a6700;background:#fff8c5;padding:6px 10px;border-radius:6px}img.thumb{width:72px;height:72px;object-fit:contain;background:#eef1f4}code{background:#eef1f4;padding:1px 4px;border-radius:4px}
"""


def _esc(v: Any) -> str:
    """HTML-escape text; ``scheme://`` is written with an entity for the colon so
    the page holds no URL while still displaying it as typed."""
    s = _html.escape(v if isinstance(v, str) else fmt_value(v))
    return s.replace("://", "&#58;//")


def _img(png: bytes | None, caption: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], num_cols: Sequence[int] = ()) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in num_cols else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _overview(rows: list[dict], adjs: list[dict], L: str) -> str:
    f1 = [(r["val_f1"], r["epoch"]) for r in rows
          if isinstance(r["val_f1"], (int, float)) and math.isfinite(r["val_f1"])]
    best = max(f1) if f1 else None
    final_acc = next((r["val_acc"] for r in reversed(rows) if r["val_acc"] is not None), None)
    decided = [(a.get("outcome") or {}).get("decision") or a.get("status") for a in adjs]
    adj_text = str(len(adjs))
    if adjs:
        adj_text += (f" ({label(L, 'status_', 'kept')} {decided.count('kept')}, "
                     f"{label(L, 'status_', 'reverted')} {decided.count('reverted')})")
    cards = [(tr(L, "html_epochs"), str(len(rows))),
             (tr(L, "html_best_f1"), "-" if not best else
              f"{fmt_metric(best[0])} ({tr(L, 'html_at_epoch', e=best[1])})"),
             (tr(L, "html_final_acc"), fmt_metric(final_acc)),
             (tr(L, "html_adjustments"), adj_text)]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{_esc(k)}</div><div class="v">{_esc(v)}</div></div>'
        for k, v in cards) + "</div>"


def _confusion(rows: list[dict], L: str, best: dict | None = None) -> str:
    """The confusion matrix of best.pt's final evaluation when the run has one, else of the last epoch."""
    val = best if best and isinstance(best.get("confusion_matrix"), list) else next(
        (r["val"] for r in reversed(rows) if r["val"] and isinstance(r["val"].get("confusion_matrix"), list)
         and r["val"]["confusion_matrix"]), None)
    if not val:
        return ""
    names = [str(c) for c in val.get("class_names") or []]
    try:
        png, uses_indices = confusion_png(val["confusion_matrix"], names, L)
    except (TypeError, ValueError):
        return ""
    caption = f"{tr(L, 'html_cm')} — {tr(L, 'html_at_epoch', e=val.get('epoch', '?'))}"
    if val is best:
        caption += f" (best.pt, {val.get('source') or 'raw'})"
    out = [f"<h2>{_esc(tr(L, 'html_cm'))}</h2>", _img(png, caption)]
    if uses_indices and names:
        out += [f"<p class='muted'>{_esc(tr(L, 'html_cm_legend'))}</p>",
                _table([tr(L, "html_index"), tr(L, "class")],
                       [[str(i), _esc(n)] for i, n in enumerate(names)], num_cols=(0,))]
    per = val.get("per_class") or {}
    if isinstance(per, dict) and per:
        out += [f"<h3>{_esc(tr(L, 'per_class'))}</h3>",
                _table([tr(L, k) for k in ("class", "precision", "recall", "f1", "support")],
                       [[_esc(n)] + [_esc(fmt_metric(m.get(k))) for k in ("precision", "recall", "f1", "support")]
                        for n, m in per.items() if isinstance(m, dict)], num_cols=(1, 2, 3, 4))]
    return "\n".join(out)


def _outcome(adj: dict, L: str) -> list[str]:
    lines = outcome_lines(adj, L)
    decided = isinstance(adj.get("outcome"), dict) and adj["outcome"].get("decision")
    return lines[1:] if decided and len(lines) > 1 else lines  # the status column says kept/reverted


def _timeline(adjs: list[dict], L: str) -> str:
    out = [f"<h2>{_esc(tr(L, 'html_timeline'))}</h2>"]
    if not adjs:
        return "\n".join(out + [f"<p class='muted'>{_esc(tr(L, 'html_no_adjustments'))}</p>"])
    rows = []
    for a in adjs:
        changes = []
        for c in a.get("changes") or []:
            if not isinstance(c, dict):
                continue
            tag = _esc(tr(L, "auto_fix_tag")) if c.get("source") == "auto_fix" else ""
            changes.append(f"<code>{_esc(c.get('key', '?'))}</code>: {_esc(c.get('old'))} → {_esc(c.get('new'))}"
                           f" <span class='muted'>({_esc(change_type(c.get('old'), c.get('new'), L))}){tag}</span>")
        status = str(a.get("status") or "-")
        decision = (a.get("outcome") or {}).get("decision") or status
        rows.append([_esc(a.get("epoch", "-")), f"<code>{_esc(a.get('adj_id', '-'))}</code>",
                     "<br>".join(changes) or _esc(tr(L, "html_none")),
                     f"<span class='{_esc(decision)}'>{_esc(label(L, 'status_', status))}</span>",
                     "<br>".join(_esc(x) for x in _outcome(a, L))])
    head = [tr(L, "col_epoch"), tr(L, "adj_id"), tr(L, "html_changes"), tr(L, "html_status"), tr(L, "html_outcome")]
    return "\n".join(out + [_table(head, rows, num_cols=(0,))])


def _suspects(rows: list[dict], L: str, data_root: str | None = None, shown: int = 20, weak: bool = False) -> str:
    """The training images best.pt contradicts (the first ``shown``, most doubtful first), each with a
    thumbnail where its file is still under ``data_root``."""
    if not rows:
        return ""
    from trainpilot.data.thumbs import thumbnail_under

    head = [tr(L, k) for k in ("html_image", "html_file", "html_label", "html_suggested", "html_p_label",
                               "html_p_suggested")]
    body = []
    for r in rows[:shown]:
        thumb = thumbnail_under(Path(data_root), r["file"]) if data_root else None
        img = f'<img class="thumb" src="{thumb}" alt="{_esc(r["file"])}">' if thumb else ""
        body.append([img, _esc(r["file"]), _esc(r["label"]), _esc(r["suggested"]), _esc(r["p_label"]),
                     _esc(r["p_suggested"])])
    note = tr(L, "html_suspects_note").format(n=len(rows), shown=min(shown, len(rows)))
    warn = f"<p class='warn'>{_esc(tr(L, 'html_suspects_weak'))}</p>" if weak else ""
    return (f"<h2>{_esc(tr(L, 'html_suspects'))}</h2><p class='muted'>{_esc(note)}</p>{warn}"
            + _table(head, body, num_cols=(4, 5)))


def render_summary_html(metrics: list[dict], adjustments: list[dict], lang: str = "en",
                        run_name: str = "", best_val: dict | None = None, suspects: list[dict] | None = None,
                        data_root: str | None = None, suspects_weak: bool = False) -> str:
    """The summary page for already-loaded metric records and (merged) adjustments; ``best_val`` is
    best.pt's final evaluation on val (its confusion matrix is shown instead of the last epoch's); ``data_root``
    is the dataset folder, for thumbnails of the suspect training images."""
    L = norm_lang(lang)
    rows = epoch_rows(metrics)
    session = next((m.get("session_id") for m in metrics if m.get("session_id")), "")
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    meta = f"{_esc(tr(L, 'html_run'))}: <code>{_esc(run_name)}</code>"
    if session:
        meta += f" · {_esc(tr(L, 'session_id'))}: <code>{_esc(session)}</code>"
    meta += f" · {_esc(tr(L, 'html_generated'))}: {_esc(now)}"
    parts = [f"<h1>{_esc(tr(L, 'html_title'))}</h1>", f"<div class='meta'>{meta}</div>",
             f"<h2>{_esc(tr(L, 'html_overview'))}</h2>", _overview(rows, adjustments, L)]
    if rows:
        parts += [f"<h2>{_esc(tr(L, 'html_loss'))}</h2>", _img(loss_png(rows, adjustments, L), tr(L, "html_loss")),
                  f"<h2>{_esc(tr(L, 'html_acc'))}</h2>", _img(accuracy_png(rows, adjustments, L), tr(L, "html_acc")),
                  f"<h2>{_esc(tr(L, 'html_lr'))}</h2>", _img(lr_png(rows, adjustments, L), tr(L, "html_lr")),
                  _confusion(rows, L, best_val)]
    else:
        parts.append(f"<p class='muted'>{_esc(tr(L, 'html_no_metrics'))}</p>")
    parts.append(_timeline(adjustments, L))
    parts.append(_suspects(suspects or [], L, data_root, weak=suspects_weak))
    html_lang = "zh-CN" if L == "zh" else "en"
    return (f'<!DOCTYPE html>\n<html lang="{html_lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(tr(L, 'html_title'))} — {_esc(run_name)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body><main>\n" + "\n".join(p for p in parts if p) + "\n</main></body>\n</html>\n")


def write_summary_html(run_dir: Path, lang: str = "en", suspects: dict | None = None) -> Path:
    """Read the run through the run store (metrics and adjustments may be missing or empty) and
    write ``run_dir/reports/summary.html``; returns its path. ``suspects`` is the suspect list's record
    (:func:`trainpilot.suspects.write_suspect_labels`) where summary.json does not hold it yet."""
    from trainpilot.runs import Run

    run = Run(Path(run_dir))
    out = run.root / "reports" / "summary.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render_summary_html(run.records, run.adjustments, lang, run.id, run.evaluations.get("val"),
                               run.suspect_labels, run.config.get("data_dir"),
                               bool((suspects or (run.summary or {}).get("suspect_labels") or {}).get("weak_model")))
    atomic_write_text(out, page)
    return out
