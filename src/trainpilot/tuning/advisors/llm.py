"""An advisor backed by an LLM, with the rule engine as its fallback.

The LLM sees the whole run (see :mod:`.prompts`) and replies with JSON in the schema of
:data:`~trainpilot.tuning.actions.PROPOSAL_JSON_SCHEMA`. A failed call or a reply without JSON
does not stop the run: that round is answered by the fallback advisor, and the proposal says so
in ``detail["fallback"]``. Replies can be cached by prompt hash so a resumed run does not pay twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from trainpilot.llm.base import LLMClient, LLMReply, display_url, redact
from trainpilot.tuning.actions import PROPOSAL_JSON_SCHEMA, Proposal, parse_llm_reply

from .base import Advisor, AdvisorContext
from .prompts import build_messages
from .rules import RuleAdvisor

_HASH = re.compile(r"^[0-9a-f]{64}$")


class AdvisorUnavailable(Exception):
    """No usable answer this round; ``str()`` is one line, ``raw`` the reply text (if any)."""

    def __init__(self, message: str, raw: str = "", detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.raw, self.detail = raw, dict(detail or {})


class FileCache(MutableMapping):
    """Replies stored as ``<cache_dir>/<prompt_hash>.json``."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.dir = Path(cache_dir)

    def _path(self, key: str) -> Path:
        if not _HASH.match(key):
            raise KeyError(key)
        return self.dir / f"{key}.json"

    def __getitem__(self, key: str) -> dict:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: dict) -> None:
        path = self._path(key)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh, ensure_ascii=False)
        os.replace(tmp, path)

    def __delitem__(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def __iter__(self):
        return (p.stem for p in sorted(self.dir.glob("*.json")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def prompt_hash(messages: list[dict[str, Any]]) -> str:
    """sha256 of the messages as canonical JSON (sorted keys, UTF-8)."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class LLMAdvisor(Advisor):
    """Asks an LLM for a proposal.

    Args:
        client: an :class:`LLMClient`, or a zero-argument factory called on first use.
        fallback: the advisor that answers a round the LLM could not (default: :class:`RuleAdvisor`).
        base_url: shown in fallback messages (default: the client's, when it has one).
        cache_dir: keep replies as ``<cache_dir>/<prompt_hash>.json``; or pass ``cache``, any mapping.
    """

    name = "llm"

    def __init__(self, client: LLMClient | Callable[[], LLMClient], fallback: Advisor | None = None, *,
                 base_url: str | None = None, cache_dir: str | Path | None = None,
                 cache: MutableMapping | None = None) -> None:
        self._client = client if isinstance(client, LLMClient) else None
        self._factory = None if isinstance(client, LLMClient) else client
        self.fallback = fallback if fallback is not None else RuleAdvisor()
        settings = getattr(client, "_settings", None)
        self.base_url = base_url or getattr(client, "base_url", None) or getattr(settings, "base_url", None)
        self.cache = cache if cache is not None else (FileCache(cache_dir) if cache_dir else None)

    @property
    def backend(self) -> str:
        return getattr(self._client, "name", None) or "llm"

    def _failure(self, error: Any) -> str:
        where = f"{self.backend} at {display_url(self.base_url)}"
        text = " ".join(redact(str(error)).split())
        for prefix in (where + ": ", self.backend + ": "):
            text = text[len(prefix):] if text.startswith(prefix) else text
        return f"LLM backend {where} failed: {text}; used the rule engine for this round"

    def _complete(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> LLMReply:
        if self._client is None:
            self._client = self._factory()
        return self._client.complete(messages, schema)

    def consult(self, messages: list[dict[str, Any]], schema: dict[str, Any], advisor: str | None = None) -> Proposal:
        """One LLM round: the parsed proposal with the call's details, or :class:`AdvisorUnavailable`."""
        key = prompt_hash(messages)
        hit = self.cache.get(key) if self.cache is not None else None
        cached = isinstance(hit, dict) and isinstance(hit.get("text"), str)
        try:
            reply = LLMReply(**{f: hit.get(f) for f in LLMReply.__dataclass_fields__}) if cached else \
                self._complete(messages, schema)
        except Exception as err:  # noqa: BLE001 - a broken backend must not stop the run
            detail = {"backend": self.backend, "prompt_hash": key, "error_kind": getattr(err, "kind", type(err).__name__)}
            raise AdvisorUnavailable(self._failure(err), detail=detail) from None
        proposal = parse_llm_reply(reply.text, advisor=advisor or self.name)
        proposal.detail.update(backend=self.backend, model=reply.model, latency_s=reply.latency_s,
                               prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                               structured_mode=reply.structured_mode, prompt_hash=key, cached=cached)
        if proposal.detail.get("parse") != "ok":
            raise AdvisorUnavailable(self._failure(proposal.analysis), raw=proposal.raw_output, detail=proposal.detail)
        if self.cache is not None and not cached:
            try:
                self.cache[key] = {f: getattr(reply, f) for f in LLMReply.__dataclass_fields__}
            except OSError as err:
                proposal.detail["cache_error"] = f"reply not cached: {err}"
        return proposal

    def fall_back(self, context: AdvisorContext, why: AdvisorUnavailable, configured: str | None = None) -> Proposal:
        """The fallback advisor's proposal for this round, recording why the LLM was not used."""
        proposal = self.fallback.advise(context)
        proposal.detail = {**proposal.detail, **why.detail, "fallback": str(why), "configured": configured or self.name}
        proposal.raw_output = why.raw
        return proposal

    def advise(self, context: AdvisorContext) -> Proposal:
        try:
            return self.consult(build_messages(context), PROPOSAL_JSON_SCHEMA)
        except AdvisorUnavailable as why:
            return self.fall_back(context, why)
