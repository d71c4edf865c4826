"""The campaign flow: the story of a campaign, told with Prefect tasks; every computation is a DVC stage.

prepare (validate, record, build data, base model and design) → baseline → interrupted trials again →
loop (propose → run the trial's stages on the task runner, `workers` at a time → finish) → report.
The bookkeeping behind each step is `hpo.record.campaign.Campaign`'s; this file only orchestrates and prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402

from hpo.config import Params  # noqa: E402
from hpo.record.campaign import Campaign, Trial  # noqa: E402
from hpo.record.dvc import ReproError  # noqa: E402
from hpo.record.layout import BASELINE  # noqa: E402

# DVC's per-output locks fail at once ("is busy") rather than wait: such errors are retried with this backoff.
BACKOFF: list[float] = [2, 5, 10, 20, 30]
RETRIES: dict[str, Any] = {"retries": 5, "retry_delay_seconds": BACKOFF, "cache_policy": NO_CACHE}


def _is_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except ReproError as err:
        return err.transient
    except Exception:
        return False
    return False


@task(name="prepare", retry_condition_fn=_is_transient, **RETRIES)
def prepare(params_file: str) -> tuple[Campaign, dict[str, int]]:
    """Validates and records the campaign, builds its data, base model and design, and opens its study."""
    campaign = Campaign.start(Path(params_file))
    return campaign, campaign.prepare()


@task(name="run-trial", retry_condition_fn=_is_transient, **RETRIES)
def run_trial(campaign: Campaign, trial: str) -> dict[str, Any]:
    """Runs a recorded trial's stages (train_lora → merge_lora → score) through DVC; returns its metrics."""
    return campaign.run(trial, on_stage=lambda t, stage: print(f"  {t}  {stage} …", flush=True))


@task(name="report", retry_condition_fn=_is_transient, **RETRIES)
def report(campaign: Campaign) -> dict[str, Any]:
    """Aggregates the campaign through DVC's report stage."""
    return campaign.report()


class CampaignStopped(RuntimeError):
    """The campaign stopped itself (too many failures); the message says why."""


@flow(name="campaign")  # Prefect's default task runner is a ThreadPoolTaskRunner: submitted trials run at once
def campaign(params_file: str = "params.yaml") -> dict[str, Any]:
    """Runs (or resumes) the campaign declared in `params_file` and returns its best-trial summary.

    With `campaign.workers: N`, N trials run at once on the flow's task runner; several `campaign run`
    processes may share one campaign (its study and records), each running trials the others do not.
    """
    c, warm = prepare(params_file)
    if warm["added"] or warm["skipped"]:
        print(f"warm start: {warm['added']} prior observations added, {warm['skipped']} outside the space skipped")
    progress = Progress(c.params)

    baseline = c.baseline()
    if baseline is not None:
        result = baseline.result or c.finish(baseline, _outcome(lambda: run_trial(c, BASELINE)))
        progress.show(baseline.id, baseline.params, result)

    queue = c.interrupted()
    for trial in queue:
        print(f"{trial.id:>8}  interrupted earlier: running it again", flush=True)
    running: dict[PrefectFuture, Trial] = {}
    while True:
        while len(running) < c.params.campaign.workers:
            next_trial = queue.pop(0) if queue else c.propose()
            if next_trial is None:
                break
            running[run_trial.submit(c, next_trial.id)] = next_trial
        if not running:
            break
        done = next(as_completed(list(running)))
        trial = running.pop(done)
        progress.show(trial.id, trial.params, c.finish(trial, _outcome(done.result)))
        stop = c.too_many_failures()
        if stop:
            for future, other in running.items():
                progress.show(other.id, other.params, c.finish(other, _outcome(future.result)))
            report(c)
            raise CampaignStopped(stop)

    summary = report(c)
    progress.final(summary)
    return summary


def _outcome(result: Any) -> dict[str, Any] | ReproError:
    """A trial's metrics, or the DVC error its stages raised (recorded as a failure; the campaign goes on)."""
    try:
        return result()
    except ReproError as err:
        return err


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
