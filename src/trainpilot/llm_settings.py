"""`LLMSettings`: the ``intelligent_training.llm`` block of the config, parsed once.

It lives next to the config schema, outside the ``llm`` package, so that loading a config never
imports the LLM clients (and the clients may import the config).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PresetName = Literal[
    "openai", "deepseek", "qwen", "moonshot", "openrouter", "ollama", "llamacpp-server", "local-gguf"
]
StructuredOutput = Literal["auto", "json_schema", "json_object", "none"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LLMSettings(BaseModel):
    """How to reach an LLM. The API key itself is never stored: only the NAME of the
    environment variable that holds it (``api_key_env``).

    Use :meth:`resolved` to get a copy with the preset's defaults filled in.
    """

    # hide_input_in_errors: a key pasted into the wrong field must not be echoed by the
    # validation error that rejects it.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, validate_assignment=True)

    preset: PresetName | None = Field(
        None, description="Known provider whose base_url, model and api_key_env are used as defaults."
    )
    base_url: str | None = Field(
        None, description="API root, e.g. https://api.deepseek.com/v1 or http://127.0.0.1:8080/v1."
    )
    model: str | None = Field(None, min_length=1, description="Model name sent to the endpoint.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Name of the environment variable that holds the API key."
    )
    temperature: float = Field(0.2, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(1024, ge=16, le=32768, description="Maximum tokens in the reply.")
    timeout: float = Field(60.0, ge=0.1, le=3600.0, description="Seconds to wait for one request.")
    max_retries: int = Field(
        2, ge=0, le=10, description="Retries after connection errors, timeouts, 429 and 5xx replies."
    )
    structured_output: StructuredOutput = Field(
        "auto",
        description="How to ask for JSON: json_schema, json_object, none (plain text), or auto "
        "(try them in that order and keep the first the endpoint accepts).",
    )
    gguf_path: str | None = Field(None, description="GGUF model file for the in-process local-gguf backend.")
    max_reply_bytes: int = Field(
        200_000, ge=1_000, le=50_000_000, description="Replies larger than this are rejected as an error."
    )

    @field_validator("api_key_env")
    @classmethod
    def _is_env_var_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. DEEPSEEK_API_KEY), "
                "not the key itself; export the key under that name"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _is_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://, e.g. http://127.0.0.1:8080/v1")
        return value

    def resolved(self) -> LLMSettings:
        """Return a copy with the preset's base_url, model and api_key_env filled in where
        they were not set explicitly."""
        if self.preset is None:
            return self.model_copy()
        from trainpilot.llm.presets import PRESETS  # the table of endpoints lives with the clients

        preset = PRESETS[self.preset]
        update: dict[str, object] = {}
        if self.base_url is None and preset.base_url is not None:
            update["base_url"] = preset.base_url
        if self.model is None and preset.model is not None:
            update["model"] = preset.model
        # The default name stands for "not chosen": configs round-trip through JSON (resolved config,
        # checkpoints), which marks every field as set, so model_fields_set cannot be relied on here.
        default_env = type(self).model_fields["api_key_env"].default
        if self.api_key_env == default_env and preset.api_key_env is not None:
            update["api_key_env"] = preset.api_key_env
        return self.model_copy(update=update)
