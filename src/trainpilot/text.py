"""Sentences in English and Chinese, kept as a key and its arguments (:class:`Msg`) and rendered when shown.

Each layer keeps its own sentences in one catalogue and adds it to :data:`CATALOGUE` when imported: the
engine its notes on how a change took effect (:mod:`trainpilot.engine.notes`), the tuning controller its
findings, remedies and verdicts (:mod:`trainpilot.tuning.messages`). A record stores the English text and
the key with its arguments, so a reader can show the run in either language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainpilot.jsonio import sanitize_for_json

CATALOGUE: dict[str, tuple[str, str]] = {}  # key -> (English, Chinese)


def say(key: str, lang: str = "en", /, **args: Any) -> str:
    """The message ``key`` in ``lang`` (``zh`` or anything else for English), formatted with ``args``."""
    en, zh = CATALOGUE[key]
    return (zh if lang == "zh" else en).format(**args)


@dataclass(frozen=True)
class Msg:
    """A message key with its arguments, rendered on demand."""

    key: str
    args: dict[str, Any] = field(default_factory=dict)

    def render(self, lang: str = "en") -> str:
        return say(self.key, lang, **self.args)

    def to_dict(self) -> dict[str, Any]:
        """The key and its arguments as stored in a run's records, so a reader can render another language."""
        return {"key": self.key, "args": sanitize_for_json(self.args)}


def render_stored(stored: Any, lang: str, fallback: str) -> str:
    """A message stored with :meth:`Msg.to_dict`, rendered in ``lang``; ``fallback`` (the text as written) where
    there is none, or it no longer renders (an unknown key, or an argument stored as "nan")."""
    try:
        return say(stored["key"], lang, **stored["args"])
    except (KeyError, TypeError, ValueError, IndexError):
        return fallback


def recorded_notes(notes: list[Msg], name: str = "notes") -> dict[str, list]:
    """How a record keeps notes: ``name`` in English and ``<name>_msg`` (each note's key and arguments)."""
    return {name: [n.render("en") for n in notes], f"{name}_msg": [n.to_dict() for n in notes]}


def render_all(written: list[Any], stored: Any, lang: str) -> list[str]:
    """Sentences kept as text (``written``) and as messages (``stored``, one per sentence), in ``lang`` where the
    messages are there, else as written."""
    written = [str(w) for w in written or []]
    if not isinstance(stored, list) or len(stored) != len(written):
        return written
    return [render_stored(m, lang, text) for m, text in zip(stored, written)]


def notes_in(entry: dict, name: str, lang: str) -> list[str]:
    """A record's ``name`` notes in ``lang`` where it keeps their keys (``<name>_msg``), else as written."""
    return render_all(entry.get(name), entry.get(f"{name}_msg"), lang)
