"""Ollama through its native ``POST /api/chat`` API (JSON-schema ``format`` support)."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from .base import LLMClient, LLMError, LLMReply
from .retry import call_with_retries, hint_for_status, kind_for_status, parse_retry_after, read_capped
from .settings import LLMSettings

try:  # openai>=3 ships httpx2; older environments have httpx.
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx  # type: ignore[no-redef]


class OllamaClient(LLMClient):
    """Chat with a model served by Ollama.

    With a schema the request carries ``"format": <schema>`` (Ollama constrains decoding to
    it); ``structured_output="json_object"`` sends ``"format": "json"`` and ``"none"`` sends
    no format. In ``auto`` mode a server that rejects the schema gets ``"json"`` from then on.
    Retries follow the same policy as the OpenAI-compatible client.

    Args:
        settings: resolved settings; ``base_url`` is Ollama's root, e.g.
            ``http://127.0.0.1:11434``.
        api_key: sent as a bearer token when given (for Ollama behind an auth proxy).
    """

    name = "ollama"

    def __init__(self, settings: LLMSettings, api_key: str | None = None) -> None:
        if not settings.base_url or not settings.model:
            raise LLMError(
                "config", "base_url and model must be set", backend=self.name, base_url=settings.base_url
            )
        self._settings = settings
        root = settings.base_url.rstrip("/")
        # A ".../v1" URL is Ollama's OpenAI-compatible root; the native API sits beside it.
        self._root = root[: -len("/v1")] if root.endswith("/v1") else root
        self._key_env = settings.api_key_env if api_key else None
        self._secrets = (api_key,) if api_key else ()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=settings.timeout, headers=headers)
        self._auto = settings.structured_output == "auto"
        self._schema_rejected = False

    def complete(self, messages: list[dict[str, Any]], json_schema: dict[str, Any] | None = None) -> LLMReply:
        start = time.monotonic()
        payload, mode = self._payload(messages, json_schema)
        try:
            body = call_with_retries(partial(self._post, payload), self._settings.max_retries)
        except LLMError as err:
            # Ollama before 0.5 rejects a schema as "format"; in auto mode, plain JSON mode
            # is the next best thing, and is used from then on.
            if not (mode == "json_schema" and self._auto and err.kind == "bad_request" and err.status != 404):
                raise
            self._schema_rejected = True
            payload, mode = self._payload(messages, json_schema)
            body = call_with_retries(partial(self._post, payload), self._settings.max_retries)
        message = body.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise self._error(
                "empty", "the model returned an empty message; try a larger max_tokens or another model"
            )
        return LLMReply(
            text=text,
            model=str(body.get("model") or self._settings.model),
            latency_s=time.monotonic() - start,
            prompt_tokens=_int_or_none(body.get("prompt_eval_count")),
            completion_tokens=_int_or_none(body.get("eval_count")),
            structured_mode=mode,
        )

    def close(self) -> None:
        self._http.close()

    def _payload(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None
    ) -> tuple[dict[str, Any], str]:
        payload: dict[str, Any] = {
            "model": self._settings.model,
            "messages": messages,
            "stream": False,
            "options": {"temperature": self._settings.temperature, "num_predict": self._settings.max_tokens},
        }
        wanted = self._settings.structured_output
        if schema is not None and wanted in ("auto", "json_schema") and not self._schema_rejected:
            payload["format"] = schema
            return payload, "json_schema"
        if wanted == "json_object" or (schema is not None and self._schema_rejected):
            payload["format"] = "json"
            return payload, "json_object"
        return payload, "none"

    def _error(self, kind: str, detail: str, **extra: Any) -> LLMError:
        return LLMError(kind, detail, backend=self.name, base_url=self._root, secrets=self._secrets, **extra)

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        limit = self._settings.max_reply_bytes
        try:
            with self._http.stream("POST", f"{self._root}/api/chat", json=payload) as response:
                raw = read_capped(response, limit, self._error)
                status, headers = response.status_code, response.headers
        except httpx.TimeoutException:
            raise self._error("timeout", f"no reply within timeout={self._settings.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise self._error(
                "connection", f"cannot connect ({type(exc).__name__}); is `ollama serve` running?"
            ) from None
        text = bytes(raw).decode("utf-8", "replace")
        if status >= 400:
            detail = _error_field(text) or text[:200]
            hint = hint_for_status(status, self._settings.model, self._key_env)
            if status == 404:
                hint = f"; run `ollama pull {self._settings.model}` or check base_url"
            raise self._error(
                kind_for_status(status),
                f"HTTP {status}: {detail}{hint}",
                status=status,
                retry_after=parse_retry_after(headers.get("retry-after")),
            )
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            raise self._error(
                "server",
                f"reply is not JSON (starts with {text[:80]!r}); is base_url an Ollama server?",
                retryable=False,
            ) from None
        if not isinstance(body, dict):
            raise self._error("server", "reply JSON is not an object", retryable=False)
        return body


def _error_field(text: str) -> str:
    """Ollama reports failures as ``{"error": "..."}``."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None
