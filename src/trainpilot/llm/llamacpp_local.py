"""A GGUF model run in-process by ``llama-cpp-python``: no server, no network."""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path
from typing import Any

from .base import LLMClient, LLMError, LLMReply
from .settings import LLMSettings

DEFAULT_N_CTX = 4096

# Loading a model takes seconds and hundreds of MB, so each file is loaded once per process.
_MODELS: dict[tuple[str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free loaded models while the interpreter is intact (llama.cpp's own __del__ fails at shutdown)."""
    with _MODELS_LOCK:
        for model in _MODELS.values():
            try:
                model.close()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        _MODELS.clear()
# One generation at a time per model: a llama_cpp.Llama is not safe to share across threads.
_CALL_LOCKS: dict[tuple[str, int], threading.Lock] = {}


def _load(path: Path, n_ctx: int) -> tuple[Any, threading.Lock]:
    key = (str(path), n_ctx)
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                import llama_cpp
            except ImportError:
                raise LLMError(
                    "config",
                    "the llama_cpp package is not installed; pip install 'trainpilot[llm]'",
                    backend=LlamaCppLocalClient.name,
                ) from None
            try:
                _MODELS[key] = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise LLMError(
                    "config",
                    f"cannot load GGUF model {path} ({exc}); is it a valid GGUF file?",
                    backend=LlamaCppLocalClient.name,
                ) from None
            _CALL_LOCKS[key] = threading.Lock()
        return _MODELS[key], _CALL_LOCKS[key]


class LlamaCppLocalClient(LLMClient):
    """Chat with a local GGUF file through ``llama_cpp.Llama.create_chat_completion``.

    The model is loaded on the first :meth:`complete`, then shared by every client using
    the same file. With a schema, decoding is constrained by a grammar built from it
    (``response_format={"type": "json_object", "schema": ...}``). ``settings.timeout`` does
    not apply: in-process generation cannot be interrupted; bound it with ``max_tokens``.

    Args:
        settings: resolved settings with ``gguf_path`` set.
        n_ctx: context window in tokens.
    """

    name = "local-gguf"

    def __init__(self, settings: LLMSettings, n_ctx: int = DEFAULT_N_CTX) -> None:
        if not settings.gguf_path:
            raise LLMError(
                "config",
                "gguf_path is not set; set intelligent_training.llm.gguf_path to a .gguf file",
                backend=self.name,
            )
        self._settings = settings
        self._path = Path(settings.gguf_path).expanduser()
        self._n_ctx = n_ctx
        if not self._path.is_file():
            raise LLMError(
                "config",
                f"GGUF model file {self._path} does not exist; check intelligent_training.llm.gguf_path",
                backend=self.name,
            )

    def complete(self, messages: list[dict[str, Any]], json_schema: dict[str, Any] | None = None) -> LLMReply:
        start = time.monotonic()
        llama, lock = _load(self._path, self._n_ctx)
        response_format, mode = self._response_format(json_schema)
        try:
            with lock:
                result = llama.create_chat_completion(
                    messages=messages,
                    response_format=response_format,
                    temperature=self._settings.temperature,
                    max_tokens=self._settings.max_tokens,
                )
        except ValueError as exc:  # e.g. the prompt does not fit in n_ctx
            raise LLMError("bad_request", f"{exc}", backend=self.name) from None
        text = result["choices"][0]["message"].get("content") or ""
        if not text.strip():
            raise LLMError(
                "empty", "the model returned an empty message; try a larger max_tokens", backend=self.name
            )
        if len(text.encode("utf-8")) > self._settings.max_reply_bytes:
            raise LLMError(
                "too_large",
                f"reply exceeds max_reply_bytes={self._settings.max_reply_bytes}",
                backend=self.name,
            )
        usage = result.get("usage") or {}
        return LLMReply(
            text=text,
            model=self._path.name,  # llama_cpp reports the full path; the file name is enough
            latency_s=time.monotonic() - start,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            structured_mode=mode,
        )

    def _response_format(self, schema: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
        wanted = self._settings.structured_output
        if schema is not None and wanted in ("auto", "json_schema"):
            return {"type": "json_object", "schema": schema}, "json_schema"
        if wanted == "json_object":
            return {"type": "json_object"}, "json_object"
        return None, "none"
