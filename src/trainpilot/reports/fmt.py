"""Value formatting shared by the markdown, JSON and HTML reports.

Floats coming out of arithmetic carry binary noise (``9.999999999999999e-05``).
Everything a person reads, and every JSON twin, shows the shortest exact form
of the value rounded to 12 significant digits instead (``0.0001``).
"""
from __future__ import annotations

import json
import math
import numbers
from typing import Any

from trainpilot.jsonio import clean_number, sanitize_for_json  # noqa: F401  (part of this module's API)

def format_number(x: Any) -> str:
    """Text form of a number: ``repr`` of :func:`clean_number` (nan/inf as such)."""
    v = clean_number(x)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return repr(v)


def fmt_value(v: Any) -> str:
    """Markdown form of a config value.

    Bools and ``None`` as JSON (``true``/``false``/``null``), numbers via
    :func:`clean_number`, strings as they are, containers as compact JSON with
    cleaned numbers.
    """
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, numbers.Number):
        return format_number(v)
    if isinstance(v, str):
        return v
    return json.dumps(sanitize_for_json(v), ensure_ascii=False)


def _finite_float(v: Any) -> float | str:
    """A finite float to format, or the finished text for anything else (missing, text, integer, inf/nan)."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    f = float(v)
    return f if math.isfinite(f) else format_number(f)


def fmt_human(v: Any, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits (an lr of ``0.000284``, not ``0.000283765431``);
    ``-`` when missing. JSON keeps the exact value; tables show this."""
    f = _finite_float(v)
    return f if isinstance(f, str) else f"{f:.{digits}g}"


def fmt_metric(v: Any, digits: int = 4) -> str:
    """A metric for tables: ``-`` when missing, fixed digits for floats."""
    f = _finite_float(v)
    if isinstance(f, str):
        return f
    if f != 0.0 and abs(f) < 10 ** -digits:
        return format_number(f)  # small values such as learning rates: 2e-05
    if abs(f) >= 100:  # throughput, seconds: fewer decimals
        digits = min(digits, 1)
    elif abs(f) >= 10:
        digits = min(digits, 2)
    return f"{f:.{digits}f}"


_CHANGE_WORDS = {
    "zh": {"enabled": "启用", "disabled": "禁用", "increased": "增加",
           "decreased": "减少", "changed": "修改", "unchanged": "未变"},
    "en": {"enabled": "enabled", "disabled": "disabled", "increased": "increased",
           "decreased": "decreased", "changed": "changed", "unchanged": "unchanged"},
}


def change_kind(old: Any, new: Any) -> str:
    """Language-neutral kind of a change: enabled/disabled/increased/decreased/
    changed/unchanged."""
    if isinstance(new, bool):
        if isinstance(old, bool) and old == new:
            return "unchanged"
        return "enabled" if new else "disabled"
    if (isinstance(old, numbers.Real) and isinstance(new, numbers.Real)
            and not isinstance(old, bool)):
        o, n = clean_number(old), clean_number(new)
        if isinstance(o, float) and isinstance(n, float) and (math.isnan(o) or math.isnan(n)):
            return "changed"
        if n > o:
            return "increased"
        if n < o:
            return "decreased"
        return "unchanged"
    if old == new:
        return "unchanged"
    return "changed"


def change_type(old: Any, new: Any, lang: str = "zh") -> str:
    """Human word for a change: 启用/禁用 for bools, 增加/减少 for numbers,
    修改 otherwise (en: enabled/disabled, increased/decreased, changed)."""
    words = _CHANGE_WORDS.get(lang, _CHANGE_WORDS["en"])
    return words[change_kind(old, new)]


def dumps_clean(obj: Any, indent: int | None = 2) -> str:
    """``json.dumps`` of the sanitized object, readable (non-ASCII kept) and strict."""
    return json.dumps(sanitize_for_json(obj), ensure_ascii=False, indent=indent,
                      allow_nan=False)


def md_cell(v: Any) -> str:
    """Text safe inside a markdown table cell."""
    s = v if isinstance(v, str) else fmt_value(v)
    return s.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def fence(text: str, lang: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run inside."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"
