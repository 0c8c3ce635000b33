"""What every advisor gets to see, and the one method it implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from trainpilot.config import IntelligentTrainingConfig, TrainConfig
from trainpilot.tuning.actions import Proposal
from trainpilot.tuning.diagnosis import Diagnosis


@dataclass
class AdvisorContext:
    """The run as an advisor sees it. ``past_interventions`` are this run's earlier adjustment
    records (``changes`` as ``{"key","old","new",...}``, ``status`` such as applied/kept/reverted,
    ``outcome``); ``language`` (zh/en) is the language of the analysis text."""

    cfg: TrainConfig
    it_cfg: IntelligentTrainingConfig
    history: list[dict]
    diagnosis: Diagnosis
    class_names: list[str] = field(default_factory=list)
    train_counts: list[int] = field(default_factory=list)
    past_interventions: list[dict] = field(default_factory=list)
    language: str = "en"


class Advisor(abc.ABC):
    """Judges the diagnosed run and proposes config changes (possibly none), with its reasons.

    An advisor only proposes: every change is checked by ``validate_proposal`` afterwards, so an
    advisor may be wrong or hostile without being able to do harm.
    """

    name: str

    @abc.abstractmethod
    def advise(self, context: AdvisorContext) -> Proposal:
        """A proposal for this round; must not raise for a bad run or a bad backend reply."""
