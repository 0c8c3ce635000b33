"""`create_client`: the backend for :class:`LLMSettings`; backends are imported only when picked."""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import LLMClient, LLMError, read_api_key
from .presets import PRESETS
from .settings import LLMSettings


def create_client(settings: LLMSettings) -> LLMClient:
    """Build the client for ``settings``: the preset's backend if one is named; otherwise
    ``gguf_path`` alone means in-process llama.cpp, and a ``base_url`` means an
    OpenAI-compatible server (or Ollama's native API on its default port 11434)."""
    s = settings.resolved()
    preset = PRESETS[s.preset] if s.preset else None
    if preset is not None:
        backend = preset.backend
    elif s.base_url:
        parts = urlsplit(s.base_url)
        is_native_ollama = parts.port == 11434 and not parts.path.rstrip("/").endswith("/v1")
        backend = "ollama" if is_native_ollama else "openai_compat"
    elif s.gguf_path:
        backend = "llamacpp_local"
    else:
        raise LLMError(
            "config",
            "no LLM endpoint configured; set intelligent_training.llm.preset (one of "
            f"{', '.join(PRESETS)}), base_url, or gguf_path",
        )

    # Imported here so that using one backend never requires another's dependencies.
    if backend == "llamacpp_local":
        from .llamacpp_local import LlamaCppLocalClient

        return LlamaCppLocalClient(s)
    if not s.model:
        raise LLMError(
            "config",
            "no model name; set intelligent_training.llm.model",
            backend=backend,
            base_url=s.base_url,
        )
    if backend == "ollama":
        from .ollama import OllamaClient

        return OllamaClient(s, api_key=read_api_key(s, preset, "ollama"))
    from .openai_compat import OpenAICompatClient

    return OpenAICompatClient(s, api_key=read_api_key(s, preset, "openai-compatible"))
