"""Bounded retries with exponential backoff, shared by the HTTP backends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from .base import LLMError

T = TypeVar("T")

BASE_DELAY_S = 0.5
MAX_DELAY_S = 30.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); ``None`` if absent or an
    HTTP date, which LLM APIs do not use in practice."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def kind_for_status(status: int) -> str:
    """The :class:`LLMError` kind for an HTTP error status; it decides whether we retry."""
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limit"
    if status == 409 or status >= 500:
        return "server"
    return "bad_request"


def hint_for_status(status: int, model: str | None, api_key_env: str | None) -> str:
    """A short suggestion appended to HTTP error messages."""
    if status in (401, 403):
        where = (
            f"the key in environment variable {api_key_env}"
            if api_key_env
            else "the endpoint's access settings"
        )
        return f"; check {where}"
    if status == 404:
        return f"; check base_url and that model {model!r} exists there"
    return ""


def backoff_delay(
    attempt: int, retry_after: float | None, *, base: float = BASE_DELAY_S, cap: float = MAX_DELAY_S
) -> float:
    """Wait before retry number ``attempt + 1``: the server's ``Retry-After`` if it gave one,
    else ``base * 2**attempt``; never more than ``cap`` so one call cannot hang a run."""
    if retry_after is not None:
        return min(retry_after, cap)
    return min(base * (2**attempt), cap)


def call_with_retries(
    call: Callable[[], T],
    max_retries: int,
    *,
    base: float = BASE_DELAY_S,
    cap: float = MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; on a retryable :class:`LLMError` wait and try again, at most
    ``max_retries`` more times. Other errors, and the last failure, propagate unchanged
    except that the message says how many attempts were made."""
    attempt = 0
    while True:
        try:
            return call()
        except LLMError as err:
            if not err.retryable:
                raise
            if attempt >= max_retries:
                if attempt > 0:
                    err.args = (f"{err.args[0]} (gave up after {attempt + 1} attempts)",)
                raise
            sleep(backoff_delay(attempt, err.retry_after, base=base, cap=cap))
            attempt += 1


def read_capped(response: Any, limit: int, error: Callable[..., Exception]) -> bytes:
    """The body of a streamed HTTP response, refusing (``error("too_large", ...)``) past ``limit`` bytes,
    whether the size is declared up front or only found while reading."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise error("too_large", f"reply of {declared} bytes exceeds max_reply_bytes={limit}")
    raw = bytearray()
    for chunk in response.iter_bytes():
        raw.extend(chunk)
        if len(raw) > limit:
            raise error("too_large", f"reply exceeds max_reply_bytes={limit}")
    return bytes(raw)
