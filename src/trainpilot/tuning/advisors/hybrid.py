"""Rules first, checked by an LLM.

The rule engine proposes; the LLM is shown that proposal with the whole run and answers with a
verdict: ``confirm`` (the rule changes stand), ``veto`` (no change this round, with its reason) or
``replace`` (its own changes, which pass the same action schema). If the LLM fails, the rule
proposal stands and the fallback is recorded.
"""

from __future__ import annotations

import copy

from trainpilot.tuning.actions import PROPOSAL_JSON_SCHEMA, Proposal

from .base import Advisor, AdvisorContext
from .llm import AdvisorUnavailable, LLMAdvisor
from .prompts import build_messages
from .rules import RuleAdvisor

VERDICTS = ("confirm", "veto", "replace")
HYBRID_JSON_SCHEMA = copy.deepcopy(PROPOSAL_JSON_SCHEMA)
HYBRID_JSON_SCHEMA["properties"]["verdict"] = {"type": "string", "enum": list(VERDICTS)}
HYBRID_JSON_SCHEMA["required"] = ["verdict", "analysis", "changes"]

_TXT = {
    "en": {"confirm": "The LLM confirmed the rule engine's proposal.",
           "veto": "The LLM vetoed the rule engine's proposal ({changes}); no change this round.",
           "replace": "The LLM replaced the rule engine's proposal ({changes}) with its own changes.",
           "skipped": "Nothing to review: the rule engine found no problem.", "rules": "Rule engine", "llm": "LLM",
           "none": "no changes", "guess": "the reply gave no valid verdict; read as {v}"},
    "zh": {"confirm": "LLM 确认了规则引擎的建议。",
           "veto": "LLM 否决了规则引擎的建议（{changes}）；本轮不修改。",
           "replace": "LLM 用自己的修改替换了规则引擎的建议（{changes}）。",
           "skipped": "无需审查：规则引擎未发现问题。", "rules": "规则引擎", "llm": "LLM",
           "none": "无变更", "guess": "回复中没有有效的 verdict，按 {v} 处理"},
}


class HybridAdvisor(Advisor):
    """The rule engine's proposal, confirmed, vetoed or replaced by an LLM."""

    name = "hybrid"

    def __init__(self, llm_advisor: LLMAdvisor, rules: Advisor | None = None) -> None:
        self.llm = llm_advisor
        self.rules = rules if rules is not None else RuleAdvisor()

    def advise(self, context: AdvisorContext) -> Proposal:
        t = _TXT["zh" if context.language == "zh" else "en"]
        rule_prop = self.rules.advise(context)
        listed = ", ".join(f"{c.key}={c.value}" for c in rule_prop.changes) or t["none"]
        if not rule_prop.changes and context.diagnosis.primary == "healthy":
            return Proposal(analysis=f"{t['skipped']}\n\n{rule_prop.analysis}", changes=[], advisor=self.name,
                            detail={**rule_prop.detail, "verdict": "skipped"})
        try:
            llm_prop = self.llm.consult(build_messages(context, rule_prop), HYBRID_JSON_SCHEMA, self.name)
        except AdvisorUnavailable as why:
            rule_prop.detail = {**rule_prop.detail, **why.detail, "fallback": str(why), "configured": self.name}
            rule_prop.raw_output = why.raw
            return rule_prop
        detail = {**llm_prop.detail, "rule_changes": [c.model_dump() for c in rule_prop.changes]}
        verdict = detail.get("verdict")
        if verdict not in VERDICTS:
            verdict = "replace" if llm_prop.changes else "confirm"
            detail["verdict_note"] = t["guess"].format(v=verdict)
        detail["verdict"] = verdict
        changes = {"confirm": rule_prop.changes, "veto": [], "replace": llm_prop.changes}[verdict]
        analysis = (f"{t[verdict].format(changes=listed)}\n\n{t['llm']}: {llm_prop.analysis}\n\n"
                    f"{t['rules']}:\n{rule_prop.analysis}")
        return Proposal(analysis=analysis, changes=list(changes), raw_output=llm_prop.raw_output,
                        advisor=self.name, detail=detail)
