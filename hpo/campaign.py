"""A campaign's bookkeeping behind one small interface: propose → run → finish, and everything they record.

The flow tells the story (prepare → untuned reference and baseline → interrupted trials → loop(propose → run →
finish) → report) and calls only this object; it never opens a record file or takes a lock. Behind it:

- `prepare` validates and records the declaration, builds data, base model and design through DVC (one process at
  a time), computes the lineage every trial shares, opens the Optuna study, adds warm-start priors and enqueues
  the design points;
- `propose` asks the proposer under the records lock and writes the decision (params and seeds in the trial's
  `trial.yaml`, its stages, its lineage) before the trial runs — decisions are data;
- the trial itself runs on a warm worker (`hpo.trials.worker.run_trial`), which commits its stages to DVC; so does
  the untuned reference (the campaign's `untuned` stage: the base model scored before any tuning), whose outcome
  `untuned` records;
- `finish` records the outcome — the score told to the study, or the failure and its reason — and its costs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from hpo.checkpoint import resolve_checkpoint
from hpo.config import Params, trial_id
from hpo.files import file_lock, read_json, records_lock
from hpo.internals.optuna import live_trial
from hpo.layout import BASELINE, STOPPED, CampaignPaths
from hpo.record.dvc import repro
from hpo.record.lineage import DATA_FILES, MODEL_FILES, code_revision, hash_files, library_versions
from hpo.record.records import (
    read_lineage,
    record_failure,
    record_lineage,
    record_trial,
    record_untuned_failure,
    request_merge,
    start_campaign,
    trial_ids,
)
from hpo.record.warm_start import warm_start
from hpo.search import ecooptigen, objectives
from hpo.search.proposers import Proposer, enqueue_design, own_trials
from hpo.search.study import claim, fail_stale, heartbeat, open_study, orphaned

# What a trial cost and where it ran, kept in lineage.yaml and the Optuna trial (never in a file a stage writes).
COSTS = (
    "wall_seconds",
    "stage_seconds",
    "ran_on",
    "worker_loads",
    "worker_rss_mb",
    "worker_peak_rss_mb",
    "gpus",  # the GPUs the trial's worker used (campaign.stop_after.gpu_hours)
    "sampled_tokens",  # generation trials: response tokens sampled in this run
    "reused_responses",  # and responses reused from the worker's earlier trials (EcoOptiGen's rule 3)
)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
ERROR_LINE = re.compile(r"^\s*(\w+(Error|Exception|Interrupt)\b.*)$")


@dataclass
class Trial:
    """A trial this process runs: its id, hyperparameters, Optuna trial (None for the baseline) and, once it has
    finished (possibly in an earlier run), its result."""

    id: str
    params: dict[str, Any]
    study_trial: optuna.trial.Trial | None = None
    result: dict[str, Any] | None = None
    stop_heartbeat: Callable[[], None] = field(default=lambda: None, repr=False)


class Campaign:
    """One campaign's record, study and locks."""

    def __init__(self, paths: CampaignPaths, params: Params) -> None:
        self.paths = paths
        self.params = params
        self.seeds = params.seeds()
        self.threads = params.trial_threads()
        self.proposer = Proposer(params)  # built once per run: `propose` asks it
        self.lineage: dict[str, Any] = {}
        self._study: optuna.Study | None = None
        self.stop_reason: str | None = None  # why proposing stopped before n_trials (the optimisation budget)
        self._costs: dict[str, dict[str, float]] = {}  # what each finished trial spent (`spent`): read once
        self._budgets: dict[str, dict[str, Any] | None] = {}  # each finished trial's budget record (`_rule1`)

    @classmethod
    def start(cls, params_file: Path, root: Path = Path("."), params: Params | None = None) -> Campaign:
        """Validates a params file (unless `params` holds it parsed and validated already) and creates (or
        reopens) its campaign's record (see `start_campaign`)."""
        paths, declared = start_campaign(params_file, root, params)
        return cls(paths, declared)

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = open_study(self.paths, self.params)
        return self._study

    def prepare(self) -> dict[str, int]:
        """Builds data, base model and design through DVC, then opens the study with its priors and design.

        Returns:
            The warm start's counts: prior observations added and skipped.
        """
        paths = self.paths
        # One process prepares; another one starting meanwhile waits here, then finds everything up to date.
        with file_lock(paths.dir / ".prepare.lock"):
            repro(
                [f"design@{paths.name}", f"prepare_data@{paths.name}", f"base_model@{paths.name}"],
                paths.dir / "logs" / "prepare.log",
            )
        self.lineage = {
            "code": code_revision(paths.root),
            "data_hash": hash_files(paths.data, DATA_FILES),
            "base_model_hash": hash_files(resolve_checkpoint(paths.base_model, paths.root), MODEL_FILES),
            "libraries": library_versions(),
        }
        with records_lock(paths.root):  # one process enqueues the design and adds the priors
            counts = warm_start(self.study, paths, self.params, self.lineage)
            enqueue_design(self.study, json.loads(paths.design.read_text()))
        return counts

    def baseline(self) -> Trial | None:
        """The baseline trial (litgpt's default settings), recorded to run unless it has a result already;
        None when the campaign runs no baseline."""
        if not self.params.campaign.baseline:
            return None
        trial = Trial(BASELINE, self.params.baseline_values())
        trial.result = read_json(self.paths.trial(BASELINE).metrics)
        if trial.result is None:
            budget = self._rule1(trial.params)
            record_trial(self.paths, BASELINE, trial.params, self.seeds, self.threads, budget)
            record_lineage(self.paths, BASELINE, self.lineage, forget=(STOPPED,))
        return trial

    def interrupted(self) -> list[Trial]:
        """Trials left running by a process that was stopped: their decision is recorded, so they were
        interrupted, not failed, and run again under the same id before anything new is asked."""
        fail_stale(self.study)
        trials = []
        with records_lock(self.paths.root):
            for frozen in orphaned(self.study):
                study_trial = live_trial(self.study, frozen)
                claim(study_trial)
                tid = trial_id(study_trial.number)
                count = int(frozen.user_attrs.get("interrupted", 0)) + 1
                study_trial.set_user_attr("interrupted", count)
                # the stop may have come before the decision was recorded
                record_trial(self.paths, tid, dict(frozen.params), self.seeds, self.threads, self._rule1(frozen.params))
                record_lineage(self.paths, tid, {"interrupted": count}, forget=(STOPPED,))
                trials.append(self._running(Trial(tid, dict(frozen.params), study_trial)))
        return trials

    def stopped(self, trials: list[Trial], signal: str) -> list[str]:
        """Records the trials this process was running when a signal stopped it (Ctrl-C, SIGTERM) as interrupted
        by it (`lineage.yaml`: `stopped`, until they run again). Their Optuna trials stay running, as a kill leaves
        them, so the next run adopts them (`interrupted`) and runs them again first. Returns their ids."""
        for trial in trials:
            trial.stop_heartbeat()
            record_lineage(self.paths, trial.id, {STOPPED: signal})
        return [trial.id for trial in trials]

    def propose(self) -> Trial | None:
        """Asks for the next trial and records its decision, or returns None when the budget is spent (counting
        trials that other processes are running)."""
        with records_lock(self.paths.root):
            started = own_trials(self.study, (*FINISHED, optuna.trial.TrialState.RUNNING))
            if len(started) >= self.params.campaign.n_trials:
                return None
            self.stop_reason = self.budget_spent()
            if self.stop_reason:
                return None
            study_trial = self.proposer.ask(self.study)
            claim(study_trial)
            tid = trial_id(study_trial.number)
            for key, value in {"trial_id": tid, "seeds": self.seeds, **self.lineage}.items():
                study_trial.set_user_attr(key, value)
            record_trial(self.paths, tid, study_trial.params, self.seeds, self.threads, self._rule1(study_trial.params))
            record_lineage(self.paths, tid, self.lineage)
        return self._running(Trial(tid, study_trial.params, study_trial))

    def _running(self, trial: Trial) -> Trial:
        assert trial.study_trial is not None
        trial.stop_heartbeat = heartbeat(self.study, trial.study_trial)
        return trial

    def finish(self, trial: Trial, outcome: dict[str, Any] | Exception) -> dict[str, Any]:
        """Records a trial's outcome — its metrics, or the error it raised as a failure with the error's own line
        as the reason — and tells the study."""
        trial.stop_heartbeat()
        result = outcome if isinstance(outcome, dict) else self._failure(trial.id, outcome)
        costs = {key: result.get(key) for key in COSTS}
        if result.get("interrupted"):  # a worker died in the middle of it and the engine ran it again
            earlier = read_lineage(self.paths, trial.id).get("interrupted", 0)
            costs["interrupted"] = int(earlier) + int(result["interrupted"])
        constraints = self.params.campaign.constraints
        spent = objectives.trial_costs(read_json(self.paths.trial(trial.id).train_metrics), result, {**result, **costs})
        if constraints and result["state"] != "failed":  # the verdict is recorded, so the report shows the same
            over = objectives.violations(constraints, spent)
            costs["feasible"] = all(v <= 0 for v in over.values())
            costs["constraint_violations"] = over
        record_lineage(self.paths, trial.id, costs)
        if trial.study_trial is not None:
            for key, value in costs.items():
                trial.study_trial.set_user_attr(key, value)
            for name, violation in (costs.get("constraint_violations") or {}).items():  # what TPE and GP read
                trial.study_trial.set_constraint(name, violation)
            if result["state"] == "complete" and result.get("score") is None:  # a non-finite objective
                trial.study_trial.set_user_attr("fail_reason", "the score is not a finite number")
                self.study.tell(trial.study_trial, state=optuna.trial.TrialState.FAIL)
            elif result["state"] == "complete":
                self.study.tell(
                    trial.study_trial, objectives.values(self.params.campaign.objectives, result["score"], spent)
                )
            elif result["state"] == "pruned":  # the pruner's decision, or EcoOptiGen's (over the inference budget)
                trial.study_trial.set_user_attr("prune_reason", result.get("reason"))
                # the score on the instances evaluated, for TPE to rank pruned trials by (rule 2's subset, or the
                # evaluation pruner's instances); not with a training pruner, whose steps hold validation losses
                checks = (result.get("budget") or {}).get("checks") or []
                evaluated = (result.get("evaluation") or {}).get("instances")
                step = checks[-1]["size"] if checks else evaluated
                single = not self.params.campaign.multi_objective and self.params.campaign.pruner is None
                if result.get("partial_score") is not None and step and single:
                    trial.study_trial.report(result["partial_score"], step=step)
                self.study.tell(trial.study_trial, state=optuna.trial.TrialState.PRUNED)
            else:
                trial.study_trial.set_user_attr("fail_reason", result["reason"])
                self.study.tell(trial.study_trial, state=optuna.trial.TrialState.FAIL)
        trial.result = result
        shown = {k: costs[k] for k in ("feasible",) if k in costs}
        return {**result, **shown, "spent": self.spent()}  # with the running total, for the progress line

    def _rule1(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """EcoOptiGen's rule 1 for a generation trial about to be recorded (`ecooptigen.rule1`), from what the
        trials recorded so far learned; None when the campaign has no inference budget. A trial's budget record
        (its metrics.json, written when its stage ends) is read once."""

        def records() -> Iterator[dict[str, Any] | None]:  # read only if rule 1 needs them
            for tid in trial_ids(self.paths):
                if tid not in self._budgets:
                    metrics = read_json(self.paths.trial(tid).metrics)
                    if metrics is None:  # still running: nothing learned yet
                        continue
                    self._budgets[tid] = metrics.get("budget")
                yield self._budgets[tid]

        return ecooptigen.rule1(self.params, values, records())

    def spent(self) -> dict[str, float]:
        """What the trials recorded so far spent: their wall seconds and GPU-hours (their lineage), the tokens they
        trained on (train.json) and their inference cost (metrics.json: tokens, or money with prices). A finished
        trial's costs (its lineage has its wall seconds) do not change and are read once, so a call reads only the
        trials that finished since the last one, whichever process ran them."""
        total = dict.fromkeys(("wall_seconds", "gpu_hours", "train_tokens", "inference_cost"), 0.0)
        for t in trial_ids(self.paths):
            costs = self._costs.get(t) or self._trial_costs(t)
            for name in total:
                total[name] += costs[name]
        return total

    def _trial_costs(self, trial: str) -> dict[str, float]:
        out, lineage = self.paths.trial(trial), read_lineage(self.paths, trial)
        costs = objectives.trial_costs(read_json(out.train_metrics), read_json(out.metrics), lineage)
        wall = costs["wall_seconds"] or 0.0
        spent = {
            "wall_seconds": wall,
            "gpu_hours": wall * int(lineage.get("gpus") or 0) / 3600,
            "train_tokens": costs["train_tokens"] or 0.0,
            "inference_cost": costs["inference_cost"] or 0.0,
        }
        if "wall_seconds" in lineage:  # finished (`finish` records every cost, None included)
            self._costs[trial] = spent
        return spent

    def budget_spent(self) -> str | None:
        """Which budget beside n_trials the trials spent (`campaign.stop_after`, `campaign.optimization_budget`),
        and how much of it; None while none is."""
        c = self.params.campaign
        limits = {f"campaign.stop_after.{k}": (k, v) for k, v in c.stop_after.model_dump().items() if v is not None}
        if c.optimization_budget is not None:
            limits["campaign.optimization_budget"] = ("inference_cost", c.optimization_budget)
        if not limits:
            return None
        spent = self.spent()
        for key, (cost, limit) in limits.items():
            if spent[cost] >= limit:
                return f"{key}: {spent[cost]:g} of {limit:g} spent"
        return None

    def _failure(self, trial: str, err: Exception) -> dict[str, Any]:
        reason = error_line(err)
        record_failure(self.paths, trial, reason)
        return {"state": "failed", "reason": reason, "score": None}

    def untuned(self, outcome: dict[str, Any] | Exception) -> dict[str, Any]:
        """Records how the untuned reference's evaluation (`untuned@<c>`, run on a worker) ended: a failure in
        failures.yaml with its error's line — the campaign goes on, and a later run tries again, since DVC has not
        recorded it — or, once it is recorded, no failure. Returns its metrics (for the progress line)."""
        if isinstance(outcome, Exception):
            reason = error_line(outcome)
            record_untuned_failure(self.paths, reason)
            return {"state": "failed", "reason": reason, "score": None}
        record_untuned_failure(self.paths, None)
        return outcome

    def too_many_failures(self) -> str | None:
        """Why the campaign must stop (more failed trials than `campaign.max_failures`), or None."""
        failed = len(own_trials(self.study, (optuna.trial.TrialState.FAIL,)))
        limit = self.params.campaign.max_failures
        if limit is None or failed <= limit:
            return None
        return (
            f"campaign.max_failures: {failed} trials failed, more than the {limit} allowed; "
            f"see campaigns/{self.name}/failures.yaml and report/trials.csv"
        )

    def report(self) -> dict[str, Any]:
        """Aggregates the campaign through DVC's report stage; returns its best-trial summary."""
        # Only the report stage (`-s`): the trials it reads are recorded by their workers' `dvc commit`; a trial
        # that another process is running has no lock entry yet and must not be started again by DVC here.
        repro([f"report@{self.name}"], self.paths.dir / "logs" / "report.log", single_item=True)
        summary: dict[str, Any] = json.loads((self.paths.report / "best.json").read_text())
        if self.params.campaign.trains and summary.get("best"):  # best.json names a usable model: merge it
            merge_trial(self.paths, summary["best"]["trial"], "best")
        return summary


def error_line(err: Exception) -> str:
    """The line of an error's message that names the exception (a stage's, from its traceback), else its first."""
    lines = [m.group(1) for m in map(ERROR_LINE.match, str(err).splitlines()) if m]
    return lines[-1] if lines else (str(err).splitlines() or [type(err).__name__])[0]


def merge_trial(paths: CampaignPaths, trial: str, reason: str) -> Path:
    """Builds a trial's merged checkpoint through DVC: registers its merge_lora stage in `merges` (so every later
    `dvc repro` rebuilds it) and reproduces it, with whatever it depends on that is not up to date; DVC skips a
    merge it has recorded with the files on disk. Returns the merged checkpoint's folder."""
    repro([request_merge(paths, trial, reason)], paths.dir / "logs" / "merge.log")
    return paths.trial(trial).merged
