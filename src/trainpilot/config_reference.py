"""The config schema for people: type labels and the README's reference table, derived from TrainConfig."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from trainpilot.config import TrainConfig


def type_label(ann: Any) -> str:
    """A field's type for people: Literal choices spelled out (``one of: Adam, AdamW, ...``)."""
    if get_origin(ann) is Literal:
        return "one of: " + ", ".join(str(a) for a in get_args(ann))
    if get_origin(ann) is list and get_args(ann) and get_origin(get_args(ann)[0]) is Literal:
        return "list of: " + ", ".join(str(a) for a in get_args(get_args(ann)[0]))
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def reference_markdown() -> str:
    """The README's config reference, generated from the schema."""
    lines = ["| key | type | default | bounds | meaning |", "|---|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            bounds = [f"{sym} {getattr(meta, attr)}" for meta in field.metadata
                      for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                      if getattr(meta, attr, None) is not None]
            default = field.get_default(call_default_factory=True)
            help_text = (field.description or "").replace("|", "\\|")
            tunable = (field.json_schema_extra or {}).get("tunable") if isinstance(field.json_schema_extra, dict) else None
            if tunable:
                help_text += f" *Tunable ({tunable}).*"
            lines.append(f"| `{prefix}{name}` | `{type_label(ann)}` | `{json.dumps(default, ensure_ascii=False)}` | "
                         f"{', '.join(bounds)} | {help_text} |")

    walk(TrainConfig, "")
    return "\n".join(lines)
