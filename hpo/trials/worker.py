"""Runs one trial inside a long-lived worker process of the engine (a Dask worker), then records it with DVC.

The worker keeps its imports (litgpt, lightning, lm-eval) and what trials share (`hpo.cache`) between
trials; a trial is the kind's stage functions called one after the other — the very functions `python -m
stages.<name>` runs, which the flow hands over by name (`stages.trial_stages()`: this package never imports
`stages`) — with their output in the trial's log, then `dvc commit` of exactly that trial's stages, so dvc.lock
and the DVC cache hold it as if `dvc repro` had run it, and `dvc repro` on a clean clone runs the stage commands
and rebuilds the same bytes.

The worker parses the campaign's params once per trial and hands the frozen `Params` to every stage, with the
trial's live pruners (`hpo.trials.pruners.Pruners`: a training stage asks the campaign's pruner as it goes, a
scoring stage `eval.pruner`) on the campaign's study, which the worker opens once per campaign and keeps for as
long as it lives (`Studies`, held by its warm-up plugin). Under `dvc repro` the same functions get neither.

Each start of a trial appends a line to `logs/<trial>.attempts` with the submission's id and the worker's
address. A worker killed in the middle of a trial leaves its line behind; the engine runs the trial again on
another worker, whose result then counts the earlier starts of the same submission as interruptions (never as a
failure).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, TextIO

import psutil
from distributed.diagnostics.plugin import WorkerPlugin

from hpo import cache
from hpo.config import load_params
from hpo.files import file_lock
from hpo.layout import CampaignPaths
from hpo.record.dvc import StageError, commit, up_to_date
from hpo.record.records import trial_stage
from hpo.trials import finetune
from hpo.trials.kinds import CampaignStageFunction, StageFunction, kind_of
from hpo.trials.pruners import Pruners, Studies


class WarmUp(WorkerPlugin):
    """A Dask worker plugin: each worker imports the trial stages' modules and what they import (`finetune.warm_up`,
    ~10 s) when it starts, instead of in its first trial; and it keeps what the worker opens for its trials for as
    long as the worker lives (`studies`: each campaign's study, opened once).

    Args:
        functions: the trial stages' functions by dvc.yaml name (`stages.trial_stages()`). Dask pickles a
            module-level function by reference, so unpickling the plugin on a worker imports their modules.
    """

    def __init__(self, functions: Mapping[str, StageFunction]) -> None:
        self.functions = dict(functions)
        self.studies = Studies()  # (pickled empty: each worker opens its own)

    def setup(self, worker: Any) -> None:
        finetune.warm_up()


SPENT = ("sampled_tokens", "reused_responses")  # costs a stage returns that depend on the worker's history
# The root logger, and those with console handlers of their own: DVC's, and lightning's (which do not propagate;
# lightning's `seed_everything` line reached the campaign's terminal).
LOGGERS = ("", "dvc", "lightning.fabric", "lightning.pytorch")


def worker_studies() -> Studies:
    """The studies this worker keeps (its warm-up plugin's: each campaign's opened once per worker); outside a Dask
    worker, or in one the plugin has not reached yet (it is registered from a thread while the campaign prepares),
    studies of their own for the caller."""
    try:
        from distributed import get_worker

        plugins = list(get_worker().plugins.values())
    except (ImportError, ValueError):  # not in a Dask worker
        plugins = []
    for plugin in plugins:
        if isinstance(plugin, WarmUp):
            return plugin.studies
    return Studies()


def worker_name() -> str:
    """The engine's name for this worker (its Dask address), or host:pid outside a Dask worker."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_trial(
    root: str,
    campaign: str,
    trial: str,
    submission: str,
    functions: Mapping[str, StageFunction],
    adopted: bool = False,
) -> dict[str, Any]:
    """Runs a recorded trial's stages in this process and records them with DVC.

    Args:
        root: the workspace (where dvc.yaml lives), absolute: stage paths are relative to it, as under DVC.
        campaign: the campaign's name.
        trial: the recorded trial's id (`t003`, `baseline`).
        submission: an id for this submission of the trial, the same for every attempt the engine makes.
        functions: the trial stages' functions by dvc.yaml name (`stages.trial_stages()`: each stage module's
            `run`, what its CLI runs); the campaign's kind says which of them a trial runs, in which order.
        adopted: the trial was left running by a run that stopped (`Campaign.interrupted`). Then, as for an
            attempt the engine makes again, a stage that dvc.lock already records with the files on disk (the
            run stopped after its `dvc commit`) is not run again, as `dvc repro` would skip it.

    Returns:
        The trial's metrics (metrics.json) with its wall seconds, each stage's seconds, the worker, the number
        of earlier attempts of this submission that were interrupted, the worker's cache builds so far and its
        resident memory after the trial.

    Raises:
        StageError: a stage raised (its exception's line is in the message; the traceback is in the log).
    """
    paths, logs, worker = _enter(root, campaign)
    interrupted = _attempt(logs / f"{trial}.attempts", submission, worker)

    start = time.perf_counter()
    seconds: dict[str, float] = {}
    spent: dict[str, Any] = {}
    params = load_params(paths.params)  # parsed once for the trial: every stage gets it
    pruners = Pruners(paths, params, worker_studies())  # the stages of a study trial ask the campaign's pruners
    kind = kind_of(params)
    kind.warm_up()  # done already where the worker plugin ran; otherwise the first trial pays the imports
    stages = [(name, functions[name]) for name in kind.STAGES]
    resumed = adopted or interrupted > 0
    ran: list[str] = []
    with (logs / f"{trial}.log").open("a", buffering=1) as log, _output_to(log):
        for name, stage in stages:
            target = trial_stage(paths, trial, name)
            _unless_cancelled(f"before stage '{target}'")
            if resumed and not ran and up_to_date(target):  # recorded before the run stopped
                print(f"Stage '{target}' is recorded in dvc.lock and unchanged: not run again", flush=True)
                continue
            ran.append(target)
            print(f"Running stage '{target}' in worker {worker}", flush=True)
            began = time.perf_counter()
            try:
                returned = stage(paths, trial, params=params, pruners=pruners)
            except Exception as err:
                traceback.print_exc()
                raise StageError(
                    f"{target} failed in worker {worker}; see {logs / f'{trial}.log'}:\n{type(err).__name__}: {err}",
                    transient=False,
                ) from None
            finally:
                cache.release()
            seconds[name] = round(time.perf_counter() - began, 3)
            if isinstance(returned, dict):  # what a stage spent in this process (a generation's reused responses)
                spent.update({k: returned[k] for k in SPENT if k in returned})
        _unless_cancelled("before its dvc commit")
        if ran:
            print(f"Recording {trial} with dvc commit of its stages", flush=True)
            began = time.perf_counter()
            commit(ran)
            seconds["dvc_commit"] = round(time.perf_counter() - began, 3)  # hashing and caching its outputs
    metrics = json.loads(paths.trial(trial).metrics.read_text())
    metrics["wall_seconds"] = round(time.perf_counter() - start, 3)
    metrics["stage_seconds"] = seconds
    metrics["ran_on"] = worker  # ("worker" in the study is the campaign process that claimed the trial)
    metrics["interrupted"] = interrupted
    metrics["worker_loads"] = dict(cache.loads)  # what this worker has built so far (base model: once)
    metrics["worker_rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)  # after the trial's release
    metrics["worker_peak_rss_mb"] = peak_rss_mb()  # the most the worker has held so far (its trials included)
    metrics["gpus"] = _gpus()
    return {**metrics, **spent}


def run_campaign_stage(root: str, campaign: str, stage: str, function: CampaignStageFunction) -> dict[str, Any]:
    """Runs one of a campaign's own stages (`<stage>@<campaign>` of the root dvc.yaml: the untuned reference) in
    this process and records it with `dvc commit`, as `run_trial` does a trial's stages: the worker's imports and
    cached base weights make it an evaluation of seconds rather than a stage process's imports. A stage that
    dvc.lock records with the files on disk is not run again, as `dvc repro` would skip it (a resumed campaign, or
    another process of the campaign that ran it meanwhile: one process at a time runs it). Its metrics are
    `campaigns/<c>/<stage>/metrics.json`.

    Args:
        root: the workspace (where dvc.yaml lives), absolute.
        campaign: the campaign's name.
        stage: the stage's name in dvc.yaml (`untuned`); its output goes to `logs/<stage>.log`.
        function: the stage's function (what `python -m stages.<stage>` runs): `function(paths, params=params)` →
            its metrics, with the params this worker parsed.

    Returns:
        The stage's metrics with `ran` (False: recorded already, not run), its wall seconds and the worker.

    Raises:
        StageError: the stage raised (its exception's line is in the message; the traceback is in the log).
    """
    paths, logs, worker = _enter(root, campaign)
    target = f"{stage}@{campaign}"
    start = time.perf_counter()
    # one process at a time (several `campaign run` processes may share a campaign): the next finds it recorded
    with (
        file_lock(paths.dir / f".{stage}.lock"),
        (logs / f"{stage}.log").open("a", buffering=1) as log,
        _output_to(log),
    ):
        if up_to_date(target):
            print(f"Stage '{target}' is recorded in dvc.lock and unchanged: not run again", flush=True)
            metrics = json.loads((paths.dir / stage / "metrics.json").read_text())
            return {**metrics, "ran": False, "ran_on": worker}
        _unless_cancelled(f"before stage '{target}'")
        params = load_params(paths.params)  # parsed once: the stage gets it
        kind_of(params).warm_up()
        print(f"Running stage '{target}' in worker {worker}", flush=True)
        try:
            metrics = function(paths, params=params)
        except Exception as err:
            traceback.print_exc()
            raise StageError(
                f"{target} failed in worker {worker}; see {logs / f'{stage}.log'}:\n{type(err).__name__}: {err}",
                transient=False,
            ) from None
        finally:
            cache.release()
        _unless_cancelled("before its dvc commit")
        print(f"Recording {target} with dvc commit", flush=True)
        commit([target])
    return {**metrics, "ran": True, "ran_on": worker, "wall_seconds": round(time.perf_counter() - start, 3)}


class TrialCancelled(RuntimeError):
    """The engine cancelled the trial's task: the campaign that submitted it stopped (Ctrl-C, SIGTERM)."""


def _unless_cancelled(where: str) -> None:
    """Ends a trial whose task the engine cancelled (a stopped campaign cancels what it was running): a Dask
    thread cannot be interrupted, so a worker of another scheduler, which outlives the campaign, stops the trial
    here — between stages, before `dvc commit` — leaving it unrecorded for the resumed campaign to run again."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        task = get_worker().state.tasks.get(thread_state.key)
    except (ImportError, ValueError, AttributeError):  # not in a Dask worker's task thread
        return
    if task is not None and task.state == "cancelled":
        print(f"Stopped {where}: the campaign that ran it stopped and cancelled it", flush=True)
        raise TrialCancelled(f"cancelled {where}")


def peak_rss_mb() -> float | None:
    """The process's peak resident memory so far, in MiB (Linux's ru_maxrss, in KiB; None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _gpus() -> int:
    """The GPUs this worker's trials compute on: one when torch sees any (`hpo.placement`: a trial computes on
    cuda:0, the first GPU of the worker's CUDA_VISIBLE_DEVICES, which dask-cuda sets to the worker's own), else
    none."""
    from hpo.placement import Devices

    return 1 if Devices.visible().cuda else 0


@contextmanager
def _output_to(log: TextIO) -> Iterator[None]:
    """Sends the trial's prints, warnings and library logs (litgpt, lightning, lm-eval, DVC) to its log file, as
    the stage processes under `dvc repro` do, instead of the worker's console and Prefect's log handlers."""
    import dvc  # noqa: F401  (importing dvc installs its handlers on the worker's console: swap them too)

    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(logger.handlers[:], logger.level) for logger in loggers]
    for logger in loggers:  # the root logger writes to the log; a logger that propagates passes its records up to it
        logger.handlers[:] = [handler] if logger is logging.getLogger() or not logger.propagate else []
        logger.setLevel(logging.INFO)
    try:
        with redirect_stdout(log), redirect_stderr(log):
            yield
    finally:
        for logger, (handlers, level) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)


def _attempt(attempts: Path, submission: str, worker: str) -> int:
    """Appends this attempt; returns how many earlier attempts of the same submission there were."""
    earlier = 0
    if attempts.is_file():
        earlier = sum(1 for line in attempts.read_text().splitlines() if line.split(" ", 1)[0] == submission)
    with attempts.open("a") as f:
        f.write(f"{submission} {worker} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    return earlier


def _enter(root: str, campaign: str) -> tuple[CampaignPaths, Path, str]:
    """A worker's start of a campaign's task: in the workspace (its own code importable, as `python -m
    stages.<name>` under DVC imports it), the campaign's paths, its logs folder (made) and this worker's name."""
    os.chdir(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    paths = CampaignPaths(campaign)
    logs = paths.dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return paths, logs, worker_name()
