"""The ``hybrid`` sampler: Optuna's sampler stays in control; our advisor proposes a set share of trials.

Before a trial is asked for, if advisor-proposed trials are below their share (default 30%) and at
least two trials have finished, the advisor (the rule engine, or the LLM when the study's config
names one) reads the best finished trial's run (its whole history and diagnosis) and the study's
history, and proposes changes. They pass through the same action schema and bounds as in-run
changes (:func:`~trainpilot.tuning.actions.validate_proposal`), are clipped to the search space, and
the best trial's params with them are enqueued (``study.enqueue_trial``).

When the advisor has nothing to fix in the best trial (a healthy run), what that trial's own
controller changed and kept is the study's evidence: the best trial's params with its kept in-run
changes applied from epoch 1 are enqueued instead (``proposed_by: "controller"``), once. When
neither gives anything new inside the space, or the LLM cannot be reached, the round falls back to
the base sampler, and the study log says so.
"""

from __future__ import annotations

from typing import Callable

from optuna.trial import TrialState

from trainpilot.search.space import Param, contains

MIN_FINISHED = 2


def _study_history(trials) -> list[dict]:
    """Finished trials as the advisor's "past interventions": their params, outcome and diagnosis."""
    out = []
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        changes = [{"key": k, "old": None, "new": v} for k, v in t.params.items()]
        out.append({"epoch": f"trial {t.number}", "changes": changes, "status": t.state.name.lower(),
                    "outcome": {"value": t.value, "diagnosis": t.user_attrs.get("diagnosis")}})
    return out


def kept_changes(adjustments: list[dict]) -> dict:
    """``{key: value}`` of the changes a run's controller made and kept, later ones winning."""
    out: dict = {}
    for a in adjustments:
        if a.get("status") == "kept":
            out.update({c["key"]: c.get("new") for c in a.get("changes") or [] if isinstance(c, dict) and "key" in c})
    return out


def _enqueue(study, trials, params: dict, attrs: dict, log: Callable[[str], None], what: str) -> bool:
    if any(t.params == params for t in trials):
        log("hybrid: the proposal was already tried; this round uses the base sampler")
        return False
    study.enqueue_trial(params, user_attrs=attrs)
    log(f"hybrid: {what}")
    return True


def _shown(updates: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in updates.items())


def propose(study, space: dict[str, Param], advisor, log: Callable[[str], None], share: float) -> bool:
    """Maybe enqueue one advisor-proposed trial; True when one was enqueued."""
    from trainpilot.runs import Run, RunStoreError
    from trainpilot.tuning.actions import loss_changed_at, validate_proposal
    from trainpilot.tuning.advisors.base import AdvisorContext
    from trainpilot.tuning.diagnosis import diagnose

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    proposed = sum(1 for t in trials if t.user_attrs.get("proposed_by"))
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    if len(done) < MIN_FINISHED or waiting or proposed + 1 > share * (len(trials) + 1):
        return False
    best = max(done, key=lambda t: t.value)
    try:
        run = Run.open(best.user_attrs["run_dir"])
        cfg = run.train_config()
    except (KeyError, RunStoreError) as err:
        log(f"hybrid: the best trial's run cannot be read here ({err}); this round uses the base sampler")
        return False
    diagnosis = diagnose(run.records, cfg, run.train_counts, lang=cfg.intelligent_training.report_language,
                         loss_since=loss_changed_at(run.adjustments))
    ctx = AdvisorContext(cfg, cfg.intelligent_training, run.records, diagnosis, run.classes, run.train_counts,
                         past_interventions=[*run.adjustments, *_study_history(trials)],
                         language=cfg.intelligent_training.report_language)
    proposal = advisor.advise(ctx)
    if proposal.detail.get("fallback"):
        log(f"hybrid: the LLM could not be used ({proposal.detail['fallback']}); this round uses the base sampler")
        return False
    validated = validate_proposal(proposal, cfg, train_counts=run.train_counts, class_names=run.classes)
    updates = contains(space, validated.updates)
    if updates:
        return _enqueue(study, trials, {**best.params, **updates},
                        {"proposed_by": advisor.name, "proposed_from": best.number, "proposal": proposal.analysis[:2000]},
                        log, f"{advisor.name} proposes trial {best.number}'s params with {_shown(updates)} "
                             f"({diagnosis.primary})")
    carried = {k: v for k, v in contains(space, kept_changes(run.adjustments)).items() if best.params.get(k) != v}
    if carried:
        return _enqueue(study, trials, {**best.params, **carried},
                        {"proposed_by": "controller", "proposed_from": best.number,
                         "proposal": f"trial {best.number}'s controller kept {_shown(carried)}; start from it"},
                        log, f"trial {best.number}'s controller kept {_shown(carried)}; "
                             f"a trial starts from its params with them")
    rejected = "; ".join(f"{r['key']}: {r['reason']}" for r in validated.rejected[:3])
    log(f"hybrid: {advisor.name} proposed nothing inside the search space for trial {best.number} "
        f"({diagnosis.primary}{'; rejected ' + rejected if rejected else ''}), and its controller kept no change "
        f"inside it; this round uses the base sampler")
    return False
