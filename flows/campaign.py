"""The campaign flow: the story of a campaign, told with Prefect tasks; every computation is a DVC stage.

prepare (validate, record, `dvc repro design@<campaign>` which builds data and base model) → baseline →
interrupted trials again → loop (ask the proposer → record the decision → `dvc repro score@<trial>` on the
task runner, `workers` at a time → tell the study) → report.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import optuna  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402

from flows.dvc import ReproError, repro  # noqa: E402
from stages.base_model import resolve_checkpoint  # noqa: E402
from stages.config import Params, derive_seed, trial_id  # noqa: E402
from stages.layout import CampaignPaths  # noqa: E402
from stages.lineage import DATA_FILES, MODEL_FILES, code_revision, hash_files, library_versions  # noqa: E402
from stages.records import (  # noqa: E402
    file_lock,
    record_failure,
    record_lineage,
    record_trial,
    records_lock,
    stage_key,
    start_campaign,
)
from stages.report import BASELINE  # noqa: E402
from stages.study import (  # noqa: E402
    ask,
    claim,
    enqueue_design,
    fail_stale,
    heartbeat,
    open_study,
    orphaned,
    own_trials,
)
from stages.warm_start import warm_start  # noqa: E402

# DVC's per-output locks fail at once ("is busy") rather than wait: such errors are retried with this backoff.
BACKOFF: list[float] = [2, 5, 10, 20, 30]
ERROR_LINE = re.compile(r"^\s*(\w+(Error|Exception|Interrupt)\b.*)$")


def _is_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except ReproError as err:
        return err.transient
    except Exception:
        return False
    return False


@task(name="prepare", retries=5, retry_delay_seconds=BACKOFF, retry_condition_fn=_is_transient)
def prepare(params_file: str) -> tuple[CampaignPaths, Params, dict[str, Any]]:
    """Validates and records the campaign, then builds its data, base model and design through DVC."""
    paths, params = start_campaign(Path(params_file))
    # One process prepares; another one starting meanwhile waits here, then finds everything up to date.
    with file_lock(paths.dir / ".prepare.lock"):
        repro(
            [f"design@{paths.name}", f"prepare_data@{paths.name}", f"base_model@{paths.name}"],
            paths.dir / "logs" / "prepare.log",
        )
    lineage = {
        "code": code_revision(),
        "data_hash": hash_files(paths.data, DATA_FILES),
        "base_model_hash": hash_files(resolve_checkpoint(paths.base_model), MODEL_FILES),
        "libraries": library_versions(),
    }
    return paths, params, lineage


@task(name="run-trial", retries=5, retry_delay_seconds=BACKOFF, retry_condition_fn=_is_transient)
def run_trial(paths: CampaignPaths, trial: str) -> dict[str, Any]:
    """Runs a recorded trial's stages (train_lora → merge_lora → score) through DVC; returns its metrics."""
    start = time.perf_counter()
    key = stage_key(paths.name, trial)
    starts: list[tuple[str, float]] = []

    def show(stage: str) -> None:
        starts.append((stage, time.perf_counter()))
        print(f"  {trial}  {stage} …", flush=True)

    stages = [f"train_lora@{key}", f"merge_lora@{key}", f"score@{key}"]
    repro(stages, paths.dir / "logs" / f"{trial}.log", on_stage=show, single_item=True)
    end = time.perf_counter()
    metrics = json.loads(paths.trial(trial).metrics.read_text())
    metrics["wall_seconds"] = round(end - start, 3)
    # Each stage's wall time, process start and imports included: from DVC starting it to the next stage's start.
    ends = [t for _, t in starts[1:]] + ([end] if starts else [])
    metrics["stage_seconds"] = {stage: round(e - t, 3) for (stage, t), e in zip(starts, ends, strict=True)}
    return metrics


@task(name="report", retries=5, retry_delay_seconds=BACKOFF, retry_condition_fn=_is_transient)
def report(paths: CampaignPaths) -> dict[str, Any]:
    """Aggregates the campaign through DVC's report stage."""
    repro([f"report@{paths.name}"], paths.dir / "logs" / "report.log")
    return json.loads((paths.report / "best.json").read_text())


class CampaignStopped(RuntimeError):
    """The campaign stopped itself (too many failures); the message says why."""


@flow(name="campaign")  # Prefect's default task runner is a ThreadPoolTaskRunner: submitted trials run at once
def campaign(params_file: str = "params.yaml") -> dict[str, Any]:
    """Runs (or resumes) the campaign declared in `params_file` and returns its best-trial summary.

    With `campaign.workers: N`, N trials run at once on the flow's task runner; several `campaign run`
    processes may share one campaign (its study and records), each running trials the others do not.
    """
    paths, params, lineage = prepare(params_file)
    seeds = {
        "sampler": derive_seed(params.campaign.seed, "sampler"),
        "design": derive_seed(params.campaign.seed, "design"),
        "train": derive_seed(params.campaign.seed, "train"),
        "eval": derive_seed(params.campaign.seed, "eval"),
    }
    study = open_study(paths, params)
    with records_lock(paths.root):  # one process enqueues the design and adds the priors
        warm = warm_start(study, paths, params, lineage)
        enqueue_design(study, json.loads(paths.design.read_text()))
    if warm["added"] or warm["skipped"]:
        print(f"warm start: {warm['added']} prior observations added, {warm['skipped']} outside the space skipped")
    progress = Progress(params)

    baseline_metrics = paths.trial(BASELINE).metrics
    if params.campaign.baseline and not baseline_metrics.is_file():
        record_trial(paths, BASELINE, params.baseline_values(), seeds)
        record_lineage(paths, BASELINE, lineage)
        result = _attempt(paths, BASELINE)
        record_lineage(paths, BASELINE, _costs(result))
        progress.show(BASELINE, params.baseline_values(), result)
    elif params.campaign.baseline:
        progress.show(BASELINE, params.baseline_values(), json.loads(baseline_metrics.read_text()))

    # Trials left running by a process that was stopped have their decision recorded: they were interrupted,
    # not failed, and run again under the same id before anything new is asked.
    fail_stale(study)
    queue: list[optuna.trial.Trial] = []
    with records_lock(paths.root):
        for frozen in orphaned(study):
            trial = optuna.trial.Trial(study, frozen._trial_id)
            claim(trial)
            tid = trial_id(trial.number)
            trial.set_user_attr("interrupted", int(frozen.user_attrs.get("interrupted", 0)) + 1)
            record_trial(paths, tid, dict(frozen.params), seeds)  # in case the stop came before the record
            record_lineage(paths, tid, {"interrupted": trial.user_attrs["interrupted"]})
            print(f"{tid:>8}  interrupted earlier: running it again", flush=True)
            queue.append(trial)

    running: dict[PrefectFuture, tuple[optuna.trial.Trial, Any]] = {}
    while True:
        while len(running) < params.campaign.workers:
            next_trial = queue.pop(0) if queue else _propose(study, paths, params, seeds, lineage)
            if next_trial is None:
                break
            future = run_trial.submit(paths, trial_id(next_trial.number))
            running[future] = (next_trial, heartbeat(study, next_trial))
        if not running:
            break
        done = next(as_completed(list(running)))
        trial, stop_heartbeat = running.pop(done)
        stop_heartbeat()
        _finish(study, paths, trial, _result(done, paths, trial_id(trial.number)), progress)
        failed = len(own_trials(study, (optuna.trial.TrialState.FAIL,)))
        limit = params.campaign.max_failures
        if limit is not None and failed > limit:
            for future in running:
                _finish(
                    study,
                    paths,
                    running[future][0],
                    _result(future, paths, trial_id(running[future][0].number)),
                    progress,
                )
            report(paths)
            raise CampaignStopped(
                f"campaign.max_failures: {failed} trials failed, more than the {limit} allowed; "
                f"see campaigns/{paths.name}/failures.yaml and report/trials.csv"
            )

    summary = report(paths)
    progress.final(summary)
    return summary


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)


def _propose(
    study: optuna.Study, paths: CampaignPaths, params: Params, seeds: dict[str, int], lineage: dict[str, Any]
) -> optuna.trial.Trial | None:
    """Asks for the next trial and records its decision, or returns None when the budget is spent (counting
    trials that other processes are running)."""
    with records_lock(paths.root):
        started = own_trials(study, (*FINISHED, optuna.trial.TrialState.RUNNING))
        if len(started) >= params.campaign.n_trials:
            return None
        trial = ask(study, params)
        claim(trial)
        tid = trial_id(trial.number)
        for key, value in {"trial_id": tid, "seeds": seeds, **lineage}.items():
            trial.set_user_attr(key, value)
        record_trial(paths, tid, trial.params, seeds)
        record_lineage(paths, tid, lineage)
    return trial


def _costs(result: dict[str, Any]) -> dict[str, Any]:
    return {"wall_seconds": result.get("wall_seconds"), "stage_seconds": result.get("stage_seconds")}


def _failure(paths: CampaignPaths, trial: str, err: Exception) -> dict[str, Any]:
    """Records a trial that raised as failed, with the exception's own line as the reason."""
    lines = [m.group(1) for m in map(ERROR_LINE.match, str(err).splitlines()) if m]
    reason = lines[-1] if lines else (str(err).splitlines() or [type(err).__name__])[0]
    record_failure(paths, trial, reason)
    return {"state": "failed", "reason": reason, "score": None}


def _attempt(paths: CampaignPaths, trial: str) -> dict[str, Any]:
    """Runs a trial in this thread; a trial that raises is recorded as failed and the campaign goes on."""
    try:
        return run_trial(paths, trial)
    except ReproError as err:
        return _failure(paths, trial, err)


def _result(future: PrefectFuture, paths: CampaignPaths, trial: str) -> dict[str, Any]:
    """The submitted trial's metrics, or its recorded failure."""
    try:
        return future.result()
    except ReproError as err:
        return _failure(paths, trial, err)


def _finish(
    study: optuna.Study, paths: CampaignPaths, trial: optuna.trial.Trial, result: dict[str, Any], progress: Progress
) -> None:
    """Tells the study a trial's score, or that it failed and why."""
    tid = trial_id(trial.number)
    for key, value in _costs(result).items():
        trial.set_user_attr(key, value)
    record_lineage(paths, tid, _costs(result))
    if result["state"] == "complete":
        study.tell(trial, result["score"])
    else:
        trial.set_user_attr("fail_reason", result["reason"])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    progress.show(tid, trial.params, result)


class Progress:
    """One line per finished trial: id, params, state, score, best so far."""

    def __init__(self, params: Params) -> None:
        self.maximize = params.eval.direction == "maximize"
        self.best: tuple[float, str] | None = None
        self.baseline: float | None = None

    def show(self, trial: str, values: dict[str, Any], result: dict[str, Any]) -> None:
        score = result.get("score")
        if trial == BASELINE:
            self.baseline = score
        elif score is not None and (self.best is None or (score > self.best[0]) == self.maximize):
            self.best = (score, trial)
        shown = " ".join(f"{k}={_short(v)}" for k, v in values.items())
        best = f"best={self.best[0]:.4f} ({self.best[1]})" if self.best else "best=-"
        score_text = f"{score:.4f}" if score is not None else "-"
        extra = f"  [{result.get('reason')}]" if result["state"] != "complete" else ""
        wall = f"{result['wall_seconds']:.0f}s" if result.get("wall_seconds") else ""
        print(f"{trial:>8}  {result['state']:<8} score={score_text}  {best}  {wall}  {shown}{extra}", flush=True)

    def final(self, summary: dict[str, Any]) -> None:
        best = summary.get("best")
        print("\n" + "=" * 78)
        print(f"campaign {summary['campaign']}: {summary['completed']} complete, {summary['failed']} failed")
        print(f"objective: {summary['metric']} ({summary['direction']})")
        if best:
            print(
                f"best trial {best['trial']}: score {best['score']:.4f}   baseline (litgpt defaults): "
                f"{_short(summary['baseline_score'])}"
            )
            print("params: " + ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items()))
            for kind, path in (summary.get("artefacts") or {}).items():
                print(f"  {kind:<8} {path}")
        print(f"report: campaigns/{summary['campaign']}/report/ (trials.csv, best.json, history.png)")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    import sys

    campaign(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")
