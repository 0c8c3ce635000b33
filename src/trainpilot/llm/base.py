"""The one interface every LLM backend implements, and its error and reply types
(the factory that picks a backend is :mod:`trainpilot.llm.factory`)."""

from __future__ import annotations

import abc
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .presets import Preset
from .settings import LLMSettings

ERROR_KINDS = frozenset(
    {"connection", "timeout", "auth", "rate_limit", "server", "empty", "too_large", "bad_request", "config"}
)
RETRYABLE_KINDS = frozenset({"connection", "timeout", "rate_limit", "server"})

# Things that look like credentials even when we do not know the exact key (a server may
# echo a masked key back in its error body).
_SECRET_PATTERNS = (
    re.compile(r"\b(?:sk|rk)-[A-Za-z0-9_\-*.]{6,}"),
    re.compile(r"(?i)(\bbearer\s+)\S+"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s,;\"'&]+"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and key-shaped strings from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + "***", text)
    return text


def display_url(url: str | None) -> str:
    """``url`` without user-info and query string, which may carry credentials."""
    if not url:
        return "(no base_url)"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url


class LLMError(Exception):
    """A failed LLM call, with a one-line message that names the backend and endpoint.

    Attributes:
        kind: one of ``connection, timeout, auth, rate_limit, server, empty, too_large,
            bad_request, config``; callers branch on it, not on the message.
        status: HTTP status, when there was one.
        retry_after: seconds the server asked us to wait (429/503), if it said.
        retryable: whether trying again may help.

    The message never contains the API key: pass it in ``secrets`` and it is scrubbed; it is
    not stored on the exception.
    """

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        backend: str = "llm",
        base_url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown LLMError kind {kind!r}; expected one of {sorted(ERROR_KINDS)}")
        where = f"{backend} at {display_url(base_url)}" if base_url else backend
        one_line = " ".join(redact(detail, secrets).split())
        super().__init__(f"{where}: {one_line}")
        self.kind = kind
        self.backend = backend
        self.status = status
        self.retry_after = retry_after
        self.retryable = kind in RETRYABLE_KINDS if retryable is None else retryable

    def __repr__(self) -> str:
        return f"LLMError(kind={self.kind!r}, message={str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The default would call LLMError(message) on unpickling, which has no `kind`.
        state = (self.kind, self.backend, self.status, self.retry_after, self.retryable)
        return (_restore_error, (str(self), *state))


def _restore_error(message: str, kind: str, backend: str, status, retry_after, retryable) -> LLMError:
    err = LLMError.__new__(LLMError)
    Exception.__init__(err, message)
    err.kind, err.backend, err.status, err.retry_after, err.retryable = (
        kind,
        backend,
        status,
        retry_after,
        retryable,
    )
    return err


@dataclass
class LLMReply:
    """What a backend returns.

    Attributes:
        text: the assistant message, as sent by the model.
        model: the model that answered (as reported by the endpoint).
        latency_s: wall time of :meth:`LLMClient.complete`, retries included.
        prompt_tokens, completion_tokens: token counts, when the endpoint reports them.
        structured_mode: how JSON was requested: ``json_schema``, ``json_object`` or ``none``.
    """

    text: str
    model: str
    latency_s: float
    prompt_tokens: int | None
    completion_tokens: int | None
    structured_mode: str


class LLMClient(abc.ABC):
    """A chat-completion endpoint.

    Implementations take OpenAI-style ``messages`` (``{"role": ..., "content": ...}``) and
    return one :class:`LLMReply`, or raise :class:`LLMError`. They do not validate what the
    model said; that is the caller's job.
    """

    name: str

    @abc.abstractmethod
    def complete(self, messages: list[dict[str, Any]], json_schema: dict[str, Any] | None = None) -> LLMReply:
        """Send ``messages`` and return the reply.

        Args:
            messages: the conversation, OpenAI chat format.
            json_schema: when given, the reply is requested as JSON matching this schema, as
                far as the endpoint supports it (see ``LLMSettings.structured_output``).
        """

    def close(self) -> None:  # noqa: B027 - an optional hook, deliberately not abstract
        """Release connections; the default has nothing to release."""


def _is_loopback(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_key(settings: LLMSettings, preset: Preset | None, backend: str) -> str | None:
    """The API key from the environment, or ``None`` for an endpoint that needs none.

    A key is required by presets that name one, and by custom endpoints that are not on
    this machine. Naming an ``api_key_env`` other than the default also makes it required; a
    local endpoint with the default variable gets no key, so a real OPENAI_API_KEY is never sent to it.
    """
    needs_key = preset.api_key_env is not None if preset else not _is_loopback(settings.base_url)
    default_env = type(settings).model_fields["api_key_env"].default
    if not needs_key and settings.api_key_env == default_env:
        return None
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise LLMError(
            "config",
            f"environment variable {settings.api_key_env} is not set; export it or set "
            "intelligent_training.llm.api_key_env",
            backend=backend,
            base_url=settings.base_url,
        )
    return key


def __getattr__(name: str):
    # create_client moved to .factory (it imports the backends, which import this module)
    if name == "create_client":
        from .factory import create_client

        return create_client
    raise AttributeError(name)
