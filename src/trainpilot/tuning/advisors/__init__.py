"""Advisors: who proposes changes to a running training job.

- :class:`RuleAdvisor` (``rules``): deterministic, offline remedies for each diagnosed state.
- :class:`LLMAdvisor` (``llm``): an LLM reads the whole run; the rule engine answers any round it cannot.
- :class:`HybridAdvisor` (``hybrid``): the rule engine proposes, an LLM confirms, vetoes or replaces.

Every proposal still goes through :func:`trainpilot.tuning.actions.validate_proposal`.
"""

from __future__ import annotations

from pathlib import Path

from trainpilot.config import IntelligentTrainingConfig
from trainpilot.llm.base import create_client

from .base import Advisor, AdvisorContext
from .hybrid import HYBRID_JSON_SCHEMA, HybridAdvisor
from .llm import AdvisorUnavailable, FileCache, LLMAdvisor, prompt_hash
from .prompts import build_messages
from .rules import RuleAdvisor, reverted_changes

__all__ = [
    "HYBRID_JSON_SCHEMA", "Advisor", "AdvisorContext", "AdvisorUnavailable", "FileCache", "HybridAdvisor",
    "LLMAdvisor", "RuleAdvisor", "build_messages", "create_advisor", "prompt_hash", "reverted_changes",
]


def create_advisor(it_cfg: IntelligentTrainingConfig, cache_dir: str | Path | None = None) -> Advisor:
    """The advisor named by ``it_cfg.advisor``.

    For ``llm`` and ``hybrid`` the LLM client is created here, from ``it_cfg.llm``. If that fails
    (``LLMError`` with ``kind="config"``: no endpoint, no model name, or the API key's environment
    variable is not set) the error is raised, never replaced by a mock or silently by the rule
    engine: the caller decides whether to stop or to run with ``advisor="rules"``. Once created,
    a failing call only makes that one round fall back to the rule engine.
    """
    if it_cfg.advisor == "rules":
        return RuleAdvisor()
    client = create_client(it_cfg.llm)
    llm = LLMAdvisor(client, RuleAdvisor(), base_url=it_cfg.llm.resolved().base_url, cache_dir=cache_dir)
    return llm if it_cfg.advisor == "llm" else HybridAdvisor(llm, RuleAdvisor())
