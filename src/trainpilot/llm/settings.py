"""`LLMSettings` is defined next to the config schema (:mod:`trainpilot.llm_settings`); re-exported here."""

from trainpilot.llm_settings import LLMSettings, PresetName, StructuredOutput

__all__ = ["LLMSettings", "PresetName", "StructuredOutput"]
