"""Training plots as PNG bytes (matplotlib, Agg canvas; pyplot is never touched,
so the process-wide backend stays as it is).

Chinese class names need a CJK font: :func:`cjk_font` looks for one among the
installed fonts. Without one, the confusion matrix labels its axes with class
indices (the caller shows the index -> name legend), so nothing renders as boxes.
"""
from __future__ import annotations

import io
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .i18n import norm_lang, tr

CJK_FONT_CANDIDATES = (
    "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK JP", "Noto Sans SC", "Noto Serif CJK SC",
    "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "STHeiti", "Arial Unicode MS",
    "AR PL UMing CN", "AR PL UKai CN", "Droid Sans Fallback",
)
_CJK_RE = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_STATUS_COLOURS = {"kept": "#2e7d32", "reverted": "#c62828", "applied": "#1565c0", "approved": "#1565c0"}


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """Name of an installed font that can render Chinese, or ``None``."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for cand in CJK_FONT_CANDIDATES:
        if cand in names:
            return cand
    return next((n for n in sorted(names) if "CJK" in n or "Han Sans" in n), None)


def needs_cjk(texts: Iterable[Any]) -> bool:
    return any(_CJK_RE.search(str(t)) for t in texts)


def labels_renderable(texts: Iterable[Any]) -> bool:
    """True when every text can be drawn with the fonts available."""
    return not needs_cjk(texts) or cjk_font() is not None


def plot_lang(lang: str) -> str:
    """Language for text inside plots: zh only when a CJK font is installed."""
    return "zh" if norm_lang(lang) == "zh" and cjk_font() else "en"


def _rc() -> Any:
    font = cjk_font()
    fam = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    return matplotlib.rc_context({"font.family": fam, "axes.unicode_minus": False})


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _mark_adjustments(ax, adjustments: Sequence[dict]) -> None:
    for adj in adjustments or []:
        x = _num(adj.get("epoch"))
        if math.isnan(x):
            continue
        status = (adj.get("outcome") or {}).get("decision") or adj.get("status")
        colour = _STATUS_COLOURS.get(str(status), "#757575")
        style = "-" if colour != "#757575" else ":"
        ax.axvline(x, color=colour, linestyle=style, linewidth=1.2, alpha=0.8)
        ax.text(x, 0.98, f" {adj.get('adj_id', '')}", transform=ax.get_xaxis_transform(),
                rotation=90, va="top", ha="right", fontsize=7, color=colour)


def _curves(rows: Sequence[dict], series: Sequence[tuple[str, str, str]], adjustments: Sequence[dict],
            title: str, ylabel: str, lang: str, log: bool = False) -> bytes | None:
    epochs = [r["epoch"] for r in rows]
    data = [(label, style, [_num(r.get(key)) for r in rows]) for key, label, style in series]
    data = [d for d in data if any(not math.isnan(v) for v in d[2])]
    if not data:
        return None
    with _rc():
        fig = Figure(figsize=(8, 4))
        ax = fig.add_subplot(1, 1, 1)
        for label, style, ys in data:
            ax.plot(epochs, ys, style, label=label, linewidth=1.6, markersize=3)
        pos = [v for _, _, ys in data for v in ys if not math.isnan(v) and v > 0] if log else []
        if pos:
            lo, hi = min(pos), max(pos)
            if hi / lo < 1.5:  # (nearly) constant: give the log axis some room
                ax.set_ylim(lo / 2, hi * 2)
            ax.set_yscale("log")
        _mark_adjustments(ax, adjustments)
        ax.set_title(title)
        ax.set_xlabel(tr(lang, "col_epoch"))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        return _png(fig)


def loss_png(rows: Sequence[dict], adjustments: Sequence[dict] = (), lang: str = "en") -> bytes | None:
    """Train and validation loss per epoch (rows from :func:`data.epoch_rows`)."""
    L = plot_lang(lang)
    return _curves(rows, [("train_loss", tr(L, "col_train_loss"), "o-"), ("val_loss", tr(L, "col_val_loss"), "s-")],
                   adjustments, tr(L, "html_loss"), tr(L, "html_loss"), L)


def accuracy_png(rows: Sequence[dict], adjustments: Sequence[dict] = (), lang: str = "en") -> bytes | None:
    """Train/val accuracy and val macro-F1 per epoch."""
    L = plot_lang(lang)
    return _curves(rows, [("train_acc", tr(L, "col_train_acc"), "o-"), ("val_acc", tr(L, "col_val_acc"), "s-"),
                          ("val_f1", tr(L, "col_val_f1"), "^-")],
                   adjustments, tr(L, "html_acc"), tr(L, "html_acc"), L)


def lr_png(rows: Sequence[dict], adjustments: Sequence[dict] = (), lang: str = "en") -> bytes | None:
    """Learning rate per epoch on a log scale."""
    L = plot_lang(lang)
    return _curves(rows, [("lr", tr(L, "col_lr"), "o-")], adjustments, tr(L, "html_lr"), tr(L, "col_lr"),
                   L, log=True)


def confusion_png(cm: Sequence[Sequence[Any]], class_names: Sequence[str] | None = None,
                  lang: str = "en", title: str | None = None) -> tuple[bytes, bool]:
    """PNG of a confusion matrix (rows: true class, columns: predicted), cells
    coloured by row-normalised rate and annotated with counts.

    Returns ``(png, uses_indices)``; ``uses_indices`` is True when the class
    names could not be drawn and the axes show indices 0..n-1 instead.
    """
    mat = [[_num(v) for v in row] for row in cm]
    n = len(mat)
    names = [str(c) for c in (class_names or [])]
    uses_indices = len(names) != n or not labels_renderable(names)
    ticks = [str(i) for i in range(n)] if uses_indices else names
    rates = []
    for row in mat:
        total = sum(v for v in row if not math.isnan(v))
        rates.append([(v / total) if total and not math.isnan(v) else 0.0 for v in row])
    L = plot_lang(lang)
    size = max(4.5, min(16.0, 1.0 + 0.6 * n))
    with _rc():
        fig = Figure(figsize=(size + 1.2, size))
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(rates if n else [[0.0]], cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(ticks, rotation=45 if not uses_indices else 0, ha="right" if not uses_indices else "center")
        ax.set_yticklabels(ticks)
        if n <= 25:
            for i, row in enumerate(mat):
                for j, v in enumerate(row):
                    text = "nan" if math.isnan(v) else f"{v:g}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="white" if rates[i][j] > 0.6 else "black")
        ax.set_xlabel(tr(L, "plot_pred"))
        ax.set_ylabel(tr(L, "plot_true"))
        ax.set_title(title if title and labels_renderable([title]) else tr(L, "html_cm"))
        return _png(fig), uses_indices


def plot_confusion_matrix(cm: Sequence[Sequence[Any]], class_names: Sequence[str] | None,
                          path: Path, lang: str = "en", title: str | None = None) -> Path:
    """Write the confusion matrix PNG to ``path`` and return it.

    When the class names need a CJK font that is not installed, the axes show
    class indices; :func:`labels_renderable` tells a caller to print the
    index -> name legend next to it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png, _ = confusion_png(cm, class_names, lang, title)
    path.write_bytes(png)
    return path
