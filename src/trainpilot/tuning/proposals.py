"""What an advisor proposes, the JSON schema LLM replies must follow, and parsing those replies.

Nothing here is validated yet: every proposal goes through
:func:`trainpilot.tuning.actions.validate_proposal` before anything is applied.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from trainpilot.llm.extract import extract_json

MAX_REPLY_BYTES = 200_000  # larger advisor replies are refused unread



class ProposedChange(BaseModel):
    key: str
    value: Any = None
    reason: str = ""


class Proposal(BaseModel):
    """What an advisor proposes; nothing in it has been checked yet."""

    analysis: str = ""
    changes: list[ProposedChange] = Field(default_factory=list)
    raw_output: str = ""
    advisor: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


PROPOSAL_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "analysis": {"type": "string"},
        "changes": {"type": "array", "items": {
            "type": "object",
            "properties": {"key": {"type": "string"}, "value": {"type": ["number", "string", "boolean"]},
                           "reason": {"type": "string"}},
            "required": ["key", "value", "reason"]}},
    },
    "required": ["analysis", "changes"],
}


def _as_changes(items: Any) -> tuple[list[ProposedChange], list[str]]:
    """``changes`` / seed ``suggestions`` items (or a {key: value} mapping) as ProposedChange."""
    if isinstance(items, dict):
        items = [{"key": k, "value": v} for k, v in items.items()]
    if not isinstance(items, list):
        return [], [f"'changes' must be a list, got {type(items).__name__}"]
    out, notes = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            notes.append(f"change #{i + 1} is not an object; skipped")
            continue
        key = next((item[k] for k in ("key", "parameter", "name") if item.get(k) is not None), None)
        if key is None:
            notes.append(f"change #{i + 1} names no key; skipped")
            continue
        value = next((item[k] for k in ("value", "suggested_value", "new_value") if k in item), None)
        reason = item.get("reason", "")
        out.append(ProposedChange(key=str(key), value=value,
                                  reason=reason if isinstance(reason, str) else json.dumps(reason, ensure_ascii=False)))
    return out, notes


def parse_llm_reply(text: Any, advisor: str = "llm", max_bytes: int = MAX_REPLY_BYTES) -> Proposal:
    """A Proposal from an advisor's reply text; never raises.

    Accepts ``{"analysis", "changes": [{"key","value","reason"}]}`` and the seed application's
    ``{"suggestions": [{"parameter","suggested_value","reason"}]}``. ``detail["parse"]`` says how it
    went: ``ok``, ``no_json``, ``no_fields`` or ``too_large``; on failure the analysis explains why
    and there are no changes. The raw text is kept (cut to 4000 characters when oversized).
    """
    text = text if isinstance(text, str) else ("" if text is None else str(text))
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        return Proposal(analysis=f"reply refused: {size} bytes is over the {max_bytes}-byte limit; no changes taken",
                        raw_output=text[:4000] + f"\n... [{size} bytes, cut]", advisor=advisor,
                        detail={"parse": "too_large", "reply_bytes": size})
    try:
        obj = extract_json(text)
    except ValueError as err:
        return Proposal(analysis=f"reply could not be parsed ({err}); no changes taken",
                        raw_output=text, advisor=advisor, detail={"parse": "no_json"})
    items = next((obj[k] for k in ("changes", "suggestions") if k in obj), None)
    analysis = next((obj[k] for k in ("analysis", "summary", "reasoning") if k in obj), "")
    if not isinstance(analysis, str):
        analysis = json.dumps(analysis, ensure_ascii=False)
    detail: dict[str, Any] = {"parse": "ok"}
    if items is None and not analysis:
        return Proposal(analysis="reply is JSON but has neither 'analysis' nor 'changes'; no changes taken",
                        raw_output=text, advisor=advisor, detail={"parse": "no_fields"})
    changes, notes = _as_changes(items if items is not None else [])
    if notes:
        detail["parse_notes"] = notes
    if "verdict" in obj:
        detail["verdict"] = str(obj["verdict"]).strip().lower()
    return Proposal(analysis=analysis, changes=changes, raw_output=text, advisor=advisor, detail=detail)
