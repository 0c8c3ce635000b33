"""The tuning controller: an epoch hook that diagnoses, proposes, applies, and keeps or rolls back.

Policy, in the order it runs at each epoch boundary:

1. an LLM proposal that arrived since the last boundary is handled (or dropped as stale);
2. an emergency (non-finite loss, or the train loss past ``divergence_threshold`` x its best)
   rolls back a pending change at once and applies the rule engine's divergence remedy;
3. a pending change whose ``evaluation_window`` has closed is kept or rolled back;
4. in ``suggest`` mode, approvals/rejections written by ``trainpilot approve|reject`` are picked up;
5. a scheduled analysis runs every ``analysis_interval`` epochs from ``min_epochs_before_analysis``,
   and again as soon as a change has been judged (its outcome is new evidence), once the change
   has had ``cooldown_epochs`` epochs, while fewer than ``max_interventions`` changes were applied;
   before the schedule starts, one early analysis runs as soon as the model answers (almost) only the
   majority class of imbalanced data that no sampler or class weights balance yet.

A change is judged after ``evaluation_window`` epochs, or after ``fast_evaluation_window`` when it
was made to a clearly broken run (accuracy near chance, non-finite loss, lr outside the usual
range), so a run started at lr x1000 too low gets its three x10 steps in a few epochs, not ten.
A warm restart ramps its lr up first; its ``evaluation_window`` starts when the ramp is over.
A change is kept when the judged metric is within a noise margin of its pre-change best, except a
refinement of a run that is not broken (``refinement_keep=new_best``), which must reach that best.

Each epoch is analysed at most once, and every adjustment is one record in adjustments.jsonl
(re-written as its status changes) with one report. All state lives in :meth:`state_dict`.
"""

from __future__ import annotations

import math
import secrets
import statistics
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

import torch

from trainpilot.config import IntelligentTrainingConfig
from trainpilot.engine.checkpoint import atomic_save, load_checkpoint
from trainpilot.engine.events import AdjustmentStatus as S
from trainpilot.engine.rundir import RunDir, append_jsonl, read_jsonl
from trainpilot.reports.data import load_adjustments
from trainpilot.engine.metrics import judged_value, monitor_value
from trainpilot.reports.markdown import write_adjustment_report
from trainpilot.text import recorded_notes
from trainpilot.tuning.actions import IMBALANCE_KEYS, Proposal, loss_changed_at, validate_proposal
from trainpilot.tuning.advisors import Advisor, AdvisorContext, RuleAdvisor, create_advisor
from trainpilot.tuning.advisors.rules import blocked_changes
from trainpilot.tuning.diagnosis import IMBALANCED, diagnose, num
from trainpilot.tuning.messages import Msg

if TYPE_CHECKING:
    from trainpilot.engine.trainer import Trainer


def new_adj_id() -> str:
    """adj_<YYYYmmdd_HHMMSS>_<random>: unique even for two adjustments within one second."""
    return f"adj_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}"


class TuningController:
    """Watches a run through the engine's hook interface and tunes it (see the module docstring).

    Args:
        it_cfg: the ``intelligent_training`` section of the config.
        run: the run directory (reports, adjustments.jsonl, pre-adjustment snapshots).
        advisor: who proposes; default from ``it_cfg.advisor``.
        asynchronous: ask the advisor on a worker thread so training never waits (default: for LLM advisors).
    """

    def __init__(self, it_cfg: IntelligentTrainingConfig, run: RunDir | None = None, advisor: Advisor | None = None,
                 asynchronous: bool | None = None):
        self.it, self.run = it_cfg, run
        self.advisor = advisor or create_advisor(it_cfg, cache_dir=run.root / "llm_cache" if run else None)
        self.asynchronous = it_cfg.advisor != "rules" if asynchronous is None else asynchronous
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advisor") if self.asynchronous else None
        self._inflight: tuple[Future, int, str, Any] | None = None
        self.applied = 0
        self.cooldown_until = 0
        self.next_due: int | None = None  # the next scheduled analysis; None: min_epochs_before_analysis
        self.discarded: list[list[int]] = []  # [first, last] epochs whose weights were rolled back or reset
        self.analyzed: list[int] = []
        self.pending: dict | None = None  # {"adj_id", "epoch", "eval_epoch", "before", "margin", "snapshot"}
        self.decisions_seen = 0
        self.overhead_s = 0.0

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"applied": self.applied, "cooldown_until": self.cooldown_until, "next_due": self.next_due,
                "discarded": [list(r) for r in self.discarded],
                "analyzed": list(self.analyzed),
                "pending": self.pending, "decisions_seen": self.decisions_seen, "overhead_s": self.overhead_s,
                "finished": getattr(self, "_finished", False)}

    def load_state_dict(self, state: dict) -> None:
        self.applied, self.cooldown_until = state["applied"], state["cooldown_until"]
        self.next_due = state.get("next_due")
        self.discarded = [list(r) for r in state.get("discarded", [])]
        self.analyzed, self.pending = list(state["analyzed"]), state["pending"]
        self.decisions_seen, self.overhead_s = state.get("decisions_seen", 0), state.get("overhead_s", 0.0)
        self._finished = bool(state.get("finished", False))

    @property
    def last_change_epoch(self) -> int:
        """The last epoch at whose end this controller changed the run (a change applied, weights rolled
        back or reset); 0 when it never did. A study's pruner does not judge the epoch right after it."""
        epochs = [r[1] for r in self.discarded] + ([self.pending["epoch"]] if self.pending else [])
        return max(epochs, default=0)

    # -- records -----------------------------------------------------------------------------------
    def records(self) -> dict[str, dict]:
        """The latest version of every adjustment of this run, by id."""
        return {r["adj_id"]: r for r in load_adjustments(self.run.adjustments)}

    def _save(self, record: dict, history: list[dict]) -> None:
        append_jsonl(self.run.adjustments, record)  # a later line with the same adj_id supersedes
        if record["changes"] or record["rejected"] or record["status"] in (S.RECORDED, S.STALE):
            write_adjustment_report(self.run.reports, record, history, self.it.report_language)

    # -- the hook --------------------------------------------------------------------------------------
    def on_epoch_end(self, tr: "Trainer", epoch: int) -> None:
        start = time.perf_counter()
        self.run = self.run or tr.run
        try:
            self._step(tr, epoch)
        finally:
            self.overhead_s += time.perf_counter() - start

    def _step(self, tr: "Trainer", epoch: int) -> None:
        self._collect_async(tr, epoch)
        if epoch not in self.analyzed and self._emergency(tr):
            if self._rescue(tr, epoch) and not self._nonfinite(tr):
                # our own change made the loss jump and is undone: that is the whole remedy; look again next epoch
                self.analyzed.append(epoch)
                self.next_due = epoch + 1
                return
            self._analyze(tr, epoch, "emergency", advisor=RuleAdvisor())
            return
        if self.pending is not None and epoch >= self.pending["eval_epoch"]:
            self._judge(tr, epoch)
        if self.it.mode == "suggest":
            self._apply_user_decisions(tr, epoch)
        # a change needs evaluation_window epochs to be judged: none is started that the run cannot finish
        if not self._free(epoch) or epoch + self.it.evaluation_window > tr.cfg.num_epochs:
            return
        if self._scheduled(epoch):
            self._analyze(tr, epoch, "scheduled")
        elif (ctx := self._early_collapse(tr)) is not None:
            self._analyze(tr, epoch, "collapse", ctx=ctx)

    def _early_collapse(self, tr: "Trainer") -> AdvisorContext | None:
        """Before the first analysis: the context when the model answers (almost) only the majority class of
        counts that nothing balances yet. That needs no trend to be seen, and every epoch at the baseline
        is one the remedy does not get. None otherwise."""
        if self.analyzed:
            return None
        ctx = self._context(tr)
        d = ctx.diagnosis
        return ctx if d.state("majority") is not None and not d.features.imbalance_handled else None

    def _scheduled(self, epoch: int) -> bool:
        return self._free(epoch) and epoch >= max(self.it.min_epochs_before_analysis, self.next_due or 0)

    def _free(self, epoch: int) -> bool:
        """Nothing in flight or being judged, no cooldown, interventions left, and this epoch not yet analysed."""
        return (epoch > self.cooldown_until and self.pending is None and self._inflight is None
                and self.applied < self.it.max_interventions and epoch not in self.analyzed)

    def lineage(self, history: list[dict]) -> list[dict]:
        """The records of the epochs the current weights descend from (rolled-back and reset epochs left out)."""
        return [r for r in history if not any(a <= r.get("epoch", 0) <= b for a, b in self.discarded)]

    def _nonfinite(self, tr: "Trainer") -> bool:
        train = [r for r in tr.history if r["phase"] == "train"]
        return bool(train) and (train[-1].get("nonfinite_steps", 0) > 0 or not math.isfinite(num(train[-1]["loss"])))

    def _emergency(self, tr: "Trainer") -> bool:
        """Non-finite loss, or a train loss that rose past divergence_threshold x its best so far."""
        train = [r for r in self.lineage(tr.history) if r["phase"] == "train"]
        if not train:
            return False
        if self._nonfinite(tr):
            return True
        since = self.loss_since()
        last = train[-1]
        earlier = [num(r["loss"]) for r in train[:-1] if r["epoch"] > since and math.isfinite(num(r["loss"]))]
        rising = bool(earlier) and num(last["loss"]) > earlier[-1]
        return rising and num(last["loss"]) > self.it.divergence_threshold * min(earlier)

    def loss_since(self) -> int:
        """The last epoch at whose end a change still in effect redefined the training loss (see loss_changed_at)."""
        return loss_changed_at(self.records().values()) if self.run else 0

    def _rescue(self, tr: "Trainer", epoch: int) -> bool:
        """Undo what caused an emergency: the pending change, or (weights already broken) the last epoch.
        Returns True when a pending change of ours was rolled back."""
        if self.pending is not None:
            record = self.records().get(self.pending["adj_id"], {})
            if record.get("trigger") == "emergency":
                # the pending change is itself a divergence remedy: keep it and add another one
                self._judge(tr, epoch, force_keep=Msg("outcome.superseded"))
                return False
            self._judge(tr, epoch, force_revert=Msg("outcome.exploded"))
            return True
        if has_nonfinite_weights(tr.model) and self.run.last.exists():
            tr.restore(load_checkpoint(self.run.last))
            self.discarded.append([epoch, epoch])
        return False

    # -- analysis ------------------------------------------------------------------------------------
    def _context(self, tr: "Trainer") -> AdvisorContext:
        counts = tr.data.train_counts()
        history = self.lineage(tr.history)
        return AdvisorContext(cfg=tr.cfg, it_cfg=self.it, history=history,
                              diagnosis=diagnose(history, tr.cfg, counts, lang=self.it.report_language,
                                                 loss_since=self.loss_since()),
                              class_names=tr.class_names, train_counts=counts,
                              past_interventions=list(self.records().values()), language=self.it.report_language)

    def _analyze(self, tr: "Trainer", epoch: int, trigger: str, advisor: Advisor | None = None,
                 ctx: AdvisorContext | None = None) -> None:
        self.analyzed.append(epoch)
        self.next_due = epoch + self.it.analysis_interval
        ctx = ctx or self._context(tr)
        if advisor is None and self.asynchronous:
            self._inflight = (self._pool.submit(self.advisor.advise, ctx), epoch, trigger, ctx.diagnosis)
            return
        self._handle(tr, epoch, (advisor or self.advisor).advise(ctx), ctx.diagnosis, trigger, epoch)

    def _collect_async(self, tr: "Trainer", epoch: int) -> None:
        if self._inflight is None or not self._inflight[0].done():
            return
        future, asked_at, trigger, diagnosis = self._inflight
        self._inflight = None
        self._handle(tr, epoch, future.result(), diagnosis, trigger, asked_at)

    def _handle(self, tr: "Trainer", epoch: int, proposal: Proposal, diagnosis, trigger: str, asked_at: int) -> None:
        counts = tr.data.train_counts()
        validated = validate_proposal(proposal, tr.cfg, self.it, counts, tr.class_names,
                                      blocked_changes(list(self.records().values()), diagnosis.features,
                                                      self.it.imbalance_evaluation_window))
        why = self._reason(trigger, asked_at, epoch)
        record = {
            "adj_id": new_adj_id(), "session_id": tr.session_id, "created_at": datetime.now().isoformat(),
            "epoch": epoch, "requested_at_epoch": asked_at, "advisor": proposal.advisor or self.it.advisor,
            "advisor_detail": proposal.detail, "mode": self.it.mode, "trigger": trigger,
            "reason": f"{why.render('en')} Diagnosis: {', '.join(s.state for s in diagnosis.states) or 'healthy'}.",
            "reason_msg": why.to_dict(), "diagnosis": diagnosis.to_dict(),
            "analysis_text": proposal.analysis, "raw_output": proposal.raw_output or proposal.analysis,
            "changes": validated.changes, "rejected": validated.rejected, "unchanged": validated.unchanged,
            **recorded_notes(validated.notes), "status": S.RECORDED, "outcome": None,
            "evaluate_after_epochs": self.it.evaluation_window,
            "config_before": tr.cfg.to_dict(), "config_after": (validated.new_config or tr.cfg).to_dict(),
        }
        if getattr(self, "_finished", False):
            record.update(status=S.RECORDED, config_after=tr.cfg.to_dict(),
                          **recorded_notes([*validated.notes, Msg("note.late")]))
        elif epoch - asked_at > self.it.stale_after_epochs:
            record.update(status=S.STALE, changes=[], config_after=tr.cfg.to_dict(),
                          **recorded_notes([*validated.notes, Msg("note.stale", {"asked": asked_at, "at": epoch,
                                                                                  "n": self.it.stale_after_epochs})]))
        elif not validated.changes or self.it.mode == "off":
            record["status"] = S.RECORDED if validated.changes or validated.rejected or self.it.mode == "off" else S.NO_CHANGE
        elif self.it.mode == "suggest":
            record["status"] = S.PROPOSED
        else:
            self._apply(tr, epoch, record, validated.updates)
        self._save(record, tr.history)

    def _reason(self, trigger: str, asked_at: int, epoch: int) -> Msg:
        """Why this analysis ran, as a message (stored with its key, so a reader can show it in zh or en)."""
        if trigger in ("emergency", "collapse"):
            return Msg(f"reason.{trigger}", {"at": epoch})
        return Msg("reason.scheduled", {"at": asked_at, "every": self.it.analysis_interval,
                                        "first": self.it.min_epochs_before_analysis})

    # -- apply, judge, roll back ------------------------------------------------------------------------
    def _apply(self, tr: "Trainer", epoch: int, record: dict, updates: dict) -> None:
        snapshot_path = self.run.checkpoints / f"pre_{record['adj_id']}.pt"
        atomic_save(tr.snapshot(), snapshot_path)
        notes = []
        features = (record.get("diagnosis") or {}).get("features") or {}
        lowered = updates.get("learning_rate", math.inf) < tr.cfg.learning_rate
        if features.get("collapsed") and lowered and tr.initial_weights is not None:
            schedule = tr.reset_weights()  # the last state the too-high lr had not damaged; nothing learned is lost
            self.discarded.append([1, epoch])
            notes += [Msg("note.reset"), schedule]
        result = tr.apply_changes(updates)
        record.update(recorded_notes(notes + result.notes, "apply_notes"))
        record["config_after"] = tr.cfg.to_dict()
        record["status"] = S.APPLIED if record["status"] != S.APPROVED else S.APPROVED
        self.applied += 1
        self.cooldown_until = epoch + self.it.cooldown_epochs - 1
        window = self.it.fast_evaluation_window if clearly_broken(record.get("diagnosis")) else self.it.evaluation_window
        if result.restart:  # a warm restart is not in full effect until its lr ramp is over: judge the epochs after it
            window = max(window, min(result.ramp_epochs + self.it.evaluation_window, tr.cfg.num_epochs - epoch))
        if any(k in IMBALANCE_KEYS for k in updates):  # minority recall moves slower than accuracy
            window = max(window, min(self.it.imbalance_evaluation_window, tr.cfg.num_epochs - epoch))
        record["evaluate_after_epochs"] = window
        metric = judge_metric(tr.cfg.monitor, tr.data.train_counts())
        values = [judged_value(r, metric) for r in tr.history if r["phase"] == "val"]
        finite = [v for v in values if math.isfinite(v)]
        diffs = [abs(b - a) for a, b in zip(finite[-6:], finite[-5:])]
        best = max(finite, default=0.0)
        # A val metric measured on n images moves by about sqrt(p(1-p)/n) by chance alone.
        sampling = math.sqrt(max(best * (1 - best), 0.0) / max(1, len(tr.data.val))) if metric != "val_loss" else 0.0
        margin = max(self.it.min_noise_margin, statistics.pstdev(diffs) if len(diffs) >= 2 else 0.0, sampling)
        strict = self.it.refinement_keep == "new_best" and is_refinement(record.get("diagnosis"), updates)
        if strict:
            margin = 0.0  # a small val set cannot tell "no worse" from "worse": a refinement must reach the old best
        self.pending = {"adj_id": record["adj_id"], "epoch": epoch, "eval_epoch": epoch + window,
                        "before": max(finite, default=-math.inf), "margin": margin, "snapshot": str(snapshot_path),
                        "metric": metric, "refinement": strict}

    def _judge(self, tr: "Trainer", epoch: int, force_revert: Msg | None = None,
               force_keep: Msg | None = None) -> None:
        p, self.pending = self.pending, None
        self.next_due = epoch  # the outcome is new evidence: the run is looked at again now
        record = self.records().get(p["adj_id"])
        metric = p.get("metric", tr.cfg.monitor)
        after = [judged_value(r, metric) for r in tr.history if r["phase"] == "val" and r["epoch"] > p["epoch"]]
        best_after = max(after, default=-math.inf)
        before = p["before"]
        sign = -1.0 if metric == "val_loss" else 1.0
        keep = force_keep is not None or (
            force_revert is None and math.isfinite(best_after) and best_after >= before - p["margin"])
        if not keep:
            tr.restore(load_checkpoint(p["snapshot"]))
            self.discarded.append([p["epoch"] + 1, epoch])
        if record is None:
            return
        shown = lambda v: round(sign * v, 6) if math.isfinite(v) else None  # noqa: E731
        record["status"] = S.KEPT if keep else S.REVERTED
        record["outcome"] = {"decision": record["status"], "metric": metric,
                             "prior_corrected": any(judged_value(r, metric) > monitor_value(r, metric) for r in tr.history
                                                    if r["phase"] == "val" and r["epoch"] >= p["epoch"] - 1),
                             "before": shown(before),
                             "after": shown(best_after), "noise_margin": round(p["margin"], 6),
                             "rule": "new_best" if p.get("refinement") else "within_noise",
                             "delta": round(sign * (best_after - before), 6) if math.isfinite(best_after) and math.isfinite(before) else None,
                             "evaluated_at_epoch": epoch}
        why = force_revert or force_keep or _why(metric, keep, p)
        record["outcome"].update(why=why.render("en"), why_msg=why.to_dict())
        self._save(record, tr.history)

    def _apply_user_decisions(self, tr: "Trainer", epoch: int) -> None:
        decisions = read_jsonl(self.run.root / "decisions.jsonl")
        new, self.decisions_seen = decisions[self.decisions_seen:], len(decisions)
        records = self.records()
        for d in new:
            record = records.get(d.get("adj_id"))
            if record is None or record["status"] != S.PROPOSED:
                continue
            if d.get("decision") == "reject" or self.pending is not None:
                record["status"] = S.REJECTED_BY_USER if d.get("decision") == "reject" else S.STALE
                self._save(record, tr.history)
                continue
            proposal = Proposal(analysis=record["analysis_text"], advisor=record["advisor"],
                                changes=[{"key": c["key"], "value": c["new"], "reason": c.get("reason", "")}
                                         for c in record["changes"] if c["source"] == "advisor"])
            validated = validate_proposal(proposal, tr.cfg, self.it, tr.data.train_counts(), tr.class_names)
            record.update(changes=validated.changes, rejected=record["rejected"] + validated.rejected, status=S.APPROVED,
                          approved_at_epoch=epoch, config_before=tr.cfg.to_dict())
            if validated.changes:
                self._apply(tr, epoch, record, validated.updates)
            self._save(record, tr.history)

    def finish(self, tr: "Trainer") -> None:
        """After the last epoch: a proposal still in flight is waited for (bounded) and recorded, not lost."""
        if self._inflight is None:
            return
        llm = self.it.llm
        try:
            self._inflight[0].result(timeout=llm.timeout * (llm.max_retries + 1) + 5)
        except Exception:  # noqa: BLE001 - a timeout here only means the reply is not recorded
            return
        self._finished = True
        self._collect_async(tr, tr.epoch)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _why(metric: str, keep: bool, pending: dict) -> Msg:
    if pending.get("refinement"):  # refinement_keep=new_best
        return Msg("outcome.reached_best" if keep else "outcome.missed_best", {"metric": metric})
    return Msg("outcome.within_noise" if keep else "outcome.below_noise", {"metric": metric})


def judge_metric(monitor: str, train_counts: list[int]) -> str:
    """The metric a change is kept or rolled back on: the monitored one, except that accuracy alone never
    judges imbalanced data (it rewards the majority class), where macro-F1 does."""
    imbalanced = bool(train_counts) and max(train_counts) >= IMBALANCED * max(1, min(train_counts))
    return "val_macro_f1" if monitor == "val_accuracy" and imbalanced else monitor


def clearly_broken(diagnosis: dict | None) -> bool:
    """A run where one epoch shows whether a change helps: near chance, non-finite, or lr far off."""
    f = (diagnosis or {}).get("features") or {}
    return bool(f.get("near_chance") or f.get("nonfinite") or f.get("lr_prior"))


REFINED_STATES = ("healthy", "overfitting", "plateau", "unstable")


def is_refinement(diagnosis: dict | None, updates: dict) -> bool:
    """A change meant to improve a run that is not broken: diagnosed as healthy, overfitting, on a plateau or
    unstable, with nothing near chance, non-finite or at the majority baseline, and no class-balance key (whose
    minority gains a few-image val set shows only slowly)."""
    f = (diagnosis or {}).get("features") or {}
    return ((diagnosis or {}).get("primary") in REFINED_STATES and not clearly_broken(diagnosis)
            and not (f.get("collapsed") or f.get("at_baseline")) and not any(k in IMBALANCE_KEYS for k in updates))


def has_nonfinite_weights(model: torch.nn.Module) -> bool:
    return any(not torch.isfinite(p).all() for p in model.parameters())
