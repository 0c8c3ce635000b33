"""Known LLM endpoints, in one table.

A preset fills in whatever the user left unset (``base_url``, ``model``, ``api_key_env``);
anything the user sets explicitly wins. Adding a provider is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["openai_compat", "ollama", "llamacpp_local"]


@dataclass(frozen=True)
class Preset:
    """Defaults for one provider.

    Attributes:
        backend: which client module talks to it.
        base_url: API root, or ``None`` for the in-process backend.
        model: default model name.
        api_key_env: environment variable that must hold the key, or ``None`` when the
            endpoint needs no key (local servers).
    """

    backend: Backend
    base_url: str | None
    model: str | None
    api_key_env: str | None


PRESETS: dict[str, Preset] = {
    "openai": Preset("openai_compat", "https://api.openai.com/v1", "gpt-4o-mini", "OPENAI_API_KEY"),
    "deepseek": Preset("openai_compat", "https://api.deepseek.com/v1", "deepseek-chat", "DEEPSEEK_API_KEY"),
    "qwen": Preset(
        "openai_compat",
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "qwen-plus",
        "DASHSCOPE_API_KEY",
    ),
    "moonshot": Preset("openai_compat", "https://api.moonshot.cn/v1", "moonshot-v1-8k", "MOONSHOT_API_KEY"),
    "openrouter": Preset(
        "openai_compat", "https://openrouter.ai/api/v1", "openai/gpt-4o-mini", "OPENROUTER_API_KEY"
    ),
    "ollama": Preset("ollama", "http://127.0.0.1:11434", "qwen2.5:7b", None),
    # llama.cpp's server accepts any model name; "local" matches `--model_alias local`.
    "llamacpp-server": Preset("openai_compat", "http://127.0.0.1:8080/v1", "local", None),
    "local-gguf": Preset("llamacpp_local", None, None, None),
}
