"""LLM clients behind one small interface.

>>> from trainpilot.llm import LLMSettings, create_client
>>> client = create_client(LLMSettings(preset="deepseek"))  # needs DEEPSEEK_API_KEY
>>> reply = client.complete([{"role": "user", "content": "Say hi as JSON"}], json_schema=None)

Backends live in their own modules (``openai_compat``, ``ollama``, ``llamacpp_local``) and
are imported only when :func:`create_client` picks them.
"""

from .base import LLMClient, LLMError, LLMReply
from .factory import create_client
from .extract import extract_json
from .local_model import smollm2_gguf_path
from .presets import PRESETS, Preset
from .settings import LLMSettings

__all__ = [
    "PRESETS",
    "LLMClient",
    "LLMError",
    "LLMReply",
    "LLMSettings",
    "Preset",
    "create_client",
    "extract_json",
    "smollm2_gguf_path",
]
