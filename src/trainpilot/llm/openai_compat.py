"""Any OpenAI-compatible chat endpoint (OpenAI, DeepSeek, Qwen, Moonshot, OpenRouter,
llama.cpp's server, vLLM, ...), through the official ``openai`` SDK."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

import openai

from .base import LLMClient, LLMError, LLMReply
from .retry import call_with_retries, hint_for_status, kind_for_status, parse_retry_after, read_capped
from .settings import LLMSettings

try:  # openai>=3 is built on httpx2; older releases on httpx.
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx  # type: ignore[no-redef]

_MODES_IN_ORDER = ("json_schema", "json_object", "none")
_NO_KEY = "no-key-required"  # the SDK refuses an empty key; local servers ignore this one


class OpenAICompatClient(LLMClient):
    """Chat completions over the OpenAI HTTP API.

    Retries (connection errors, timeouts, 429, 5xx) are done here with backoff that honours
    ``Retry-After``; the SDK's own retries are off so there is one policy. With
    ``structured_output="auto"`` the client tries ``json_schema``, then ``json_object``, then
    plain text, moving on only when the server rejects the request (a 4xx such as 400/422,
    but not 404, or the 500 naming ``response_format`` that llama.cpp's server sends), and
    keeps the first mode that works for the rest of its life.

    Args:
        settings: resolved settings; ``base_url`` and ``model`` must be set.
        api_key: the key, or ``None`` for endpoints that need none. Not kept anywhere
            except inside the SDK client.
    """

    name = "openai-compatible"

    def __init__(self, settings: LLMSettings, api_key: str | None = None) -> None:
        if not settings.base_url or not settings.model:
            raise LLMError(
                "config", "base_url and model must be set", backend=self.name, base_url=settings.base_url
            )
        self._settings = settings
        self._key_env = settings.api_key_env if api_key else None
        self._secrets = (api_key,) if api_key else ()
        self._client = openai.OpenAI(
            base_url=settings.base_url, api_key=api_key or _NO_KEY, timeout=settings.timeout, max_retries=0
        )
        self._learned_mode: str | None = None

    @property
    def structured_mode(self) -> str | None:
        """The mode ``auto`` settled on, once a request with a schema has succeeded."""
        return self._learned_mode

    def complete(self, messages: list[dict[str, Any]], json_schema: dict[str, Any] | None = None) -> LLMReply:
        start = time.monotonic()
        modes = self._modes_to_try(json_schema)
        for index, mode in enumerate(modes):
            try:
                body = call_with_retries(
                    partial(self._post, messages, mode, json_schema), self._settings.max_retries
                )
            except LLMError as err:
                # Only a rejected request is worth another mode; a 404 (wrong model/URL) is not.
                if err.kind == "bad_request" and err.status != 404 and index + 1 < len(modes):
                    continue
                raise
            if self._settings.structured_output == "auto" and json_schema is not None:
                self._learned_mode = mode
            return self._to_reply(body, mode, time.monotonic() - start)
        raise AssertionError("unreachable: the loop returns or raises")

    def close(self) -> None:
        self._client.close()

    def _modes_to_try(self, json_schema: dict[str, Any] | None) -> tuple[str, ...]:
        wanted = self._settings.structured_output
        if json_schema is None:
            return ("json_object",) if wanted == "json_object" else ("none",)
        if wanted != "auto":
            return (wanted,)
        return (self._learned_mode,) if self._learned_mode else _MODES_IN_ORDER

    def _request_args(
        self, messages: list[dict[str, Any]], mode: str, schema: dict[str, Any] | None
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self._settings.model,
            "messages": messages,
            "temperature": self._settings.temperature,
            "max_tokens": self._settings.max_tokens,
        }
        if mode == "json_schema":
            args["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "proposal", "schema": schema, "strict": False},
            }
        elif mode == "json_object":
            args["response_format"] = {"type": "json_object"}
        return args

    def _error(self, kind: str, detail: str, **extra: Any) -> LLMError:
        return LLMError(
            kind, detail, backend=self.name, base_url=self._settings.base_url, secrets=self._secrets, **extra
        )

    def _post(
        self, messages: list[dict[str, Any]], mode: str, schema: dict[str, Any] | None
    ) -> dict[str, Any]:
        """One HTTP request; returns the decoded JSON body or raises LLMError."""
        limit = self._settings.max_reply_bytes
        try:
            # Streaming the raw body lets us stop reading at max_reply_bytes.
            with self._client.chat.completions.with_streaming_response.create(
                **self._request_args(messages, mode, schema)
            ) as response:
                raw = read_capped(response, limit, self._error)
        except openai.APITimeoutError:
            raise self._error("timeout", f"no reply within timeout={self._settings.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise self._error(
                "connection", f"cannot connect ({_cause(exc)}); is the server running?"
            ) from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except httpx.TimeoutException:
            raise self._error(
                "timeout", f"reply stalled beyond timeout={self._settings.timeout:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise self._error(
                "connection", f"connection broke while reading the reply ({type(exc).__name__})"
            ) from None
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = bytes(raw[:80]).decode("utf-8", "replace")
            raise self._error(
                "server",
                f"reply is not JSON (starts with {snippet!r}); is base_url an OpenAI-compatible API?",
                retryable=False,
            ) from None
        if not isinstance(body, dict):
            raise self._error("server", "reply JSON is not an object", retryable=False)
        return body

    def _status_error(self, exc: openai.APIStatusError) -> LLMError:
        status = exc.status_code
        detail = _body_message(exc.body) or exc.message
        hint = hint_for_status(status, self._settings.model, self._key_env)
        kind = kind_for_status(status)
        if kind == "server" and "response_format" in detail:
            # llama.cpp's server answers a response_format it does not know with a 500;
            # retrying cannot help, trying another structured mode can.
            kind = "bad_request"
        return self._error(
            kind,
            f"HTTP {status}: {detail[:300]}{hint}",
            status=status,
            retry_after=parse_retry_after(exc.response.headers.get("retry-after")),
        )

    def _to_reply(self, body: dict[str, Any], mode: str, latency_s: float) -> LLMReply:
        try:
            message = body["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise self._error("server", "reply has no choices[0].message", retryable=False) from None
        text = _content_text(message.get("content") if isinstance(message, dict) else None)
        if not text.strip():
            raise self._error(
                "empty", "the model returned an empty message; try a larger max_tokens or another model"
            )
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return LLMReply(
            text=text,
            model=str(body.get("model") or self._settings.model),
            latency_s=latency_s,
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
            structured_mode=mode,
        )


def _content_text(content: Any) -> str:
    """Message content as text; some servers send a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _body_message(body: object) -> str:
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("detail")
        return message if isinstance(message, str) else json.dumps(body)[:300]
    return body if isinstance(body, str) else ""


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause else type(exc).__name__


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None
