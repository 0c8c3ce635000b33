"""Pull one JSON object out of a model's reply text."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCED = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
# Reasoning models (DeepSeek-R1, Qwen3) think aloud first; braces in there are not the answer.
_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> dict[str, Any]:
    """Return the JSON object in ``text``.

    Tried in order: the whole text; each fenced code block (```json ... ```); the first
    balanced ``{...}`` that parses. Only objects count: a bare list or number is rejected.

    Raises:
        ValueError: with a short reason when no JSON object is found.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected the reply as text, got {type(text).__name__}")
    stripped = _THINKING.sub("", text).strip()
    if not stripped:
        raise ValueError("reply is empty")

    found = _loads_object(stripped)
    if found is not None:
        return found
    for block in _FENCED.findall(stripped):
        found = _loads_object(block.strip())
        if found is not None:
            return found
    for candidate in _balanced_objects(stripped):
        found = _loads_object(candidate)
        if found is not None:
            return found
    preview = " ".join(stripped[:60].split())
    raise ValueError(f"no JSON object found in the reply ({len(stripped)} chars, starts {preview!r})")


def _loads_object(candidate: str) -> dict[str, Any] | None:
    try:
        value = json.loads(candidate)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _balanced_objects(text: str):
    """Yield each ``{...}`` span whose braces balance, skipping braces inside strings."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for index in range(start, len(text)):
            char = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    yield text[start : index + 1]
                    break
        start = text.find("{", start + 1)
