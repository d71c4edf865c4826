"""The campaign flow: the story of a campaign, told with Prefect tasks on warm Dask workers.

prepare (validate, record, build data, base model and design through DVC) → the untuned reference (the base model
scored before any tuning: its DVC stage, on a warm worker) beside the baseline → interrupted trials again → loop
(propose → run the trial on a warm worker, `workers` at a time → finish) → report.
The bookkeeping behind each step is `hpo.campaign.Campaign`'s; a trial's stages run in a worker process
of the engine (`hpo.trials.worker`). This file only orchestrates and prints.

Trials are Prefect tasks on prefect-dask's `DaskTaskRunner`: by default a local Dask cluster of
`campaign.workers` single-threaded worker processes, each keeping its imports and the base model between trials;
with `campaign.scheduler` the workers of a running Dask scheduler (any number of machines: `dask worker`,
dask-jobqueue on SLURM, dask-cuda's one worker per GPU). A worker that dies in the middle of a trial loses only
that attempt: Dask runs the task again on another worker and the trial is recorded as interrupted.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import dask  # noqa: E402
import distributed  # noqa: E402, F401  (its defaults first: ours below override them)
from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402
from prefect_dask import DaskTaskRunner  # noqa: E402

# Dask's statistical profiler samples the running task's stack every 10 ms under the GIL and keeps an hour of
# samples: measured on the default campaign's baseline trial, 14.1 s in a plain process, 23.4 s in a default Dask
# worker (~130 MiB more resident memory), 15.6 s with the profiler off. A default, not a setting: the user's
# Dask configuration (DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED) still decides. Workers of another scheduler read
# their own configuration: see the README's "Beyond one machine".
dask.config.update_defaults({"distributed": {"worker": {"profile": {"enabled": False}}}})
# Dask's nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536 (glibc then hands freed memory back to the OS at
# once and stops raising its mmap threshold), so every activation tensor of a trial is a fresh mmap, page-faulted
# and zeroed again. Measured on bench/real_size.py's 4 trials at 106 M parameters: the stage functions in a plain
# process took 6.4-8.8 s to train and 12.0-15.7 s to score a trial; the same process with the nanny's variables,
# 13.5-18.5 s and 23.6-25.0 s (as in the Dask worker). None unsets it (distributed's own convention); the user's
# configuration, or MALLOC_TRIM_THRESHOLD_ in the environment, still decides.
dask.config.update_defaults({"distributed": {"nanny": {"pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": None}}}})

from flows import stopping  # noqa: E402
from flows.progress import LiveTrials, Progress  # noqa: E402
from hpo.campaign import Campaign, Trial  # noqa: E402
from hpo.config import Params, load_params  # noqa: E402
from hpo.record.dvc import StageError  # noqa: E402
from hpo.trials.worker import run_campaign_stage  # noqa: E402
from hpo.trials.worker import run_trial as run_on_worker  # noqa: E402
from stages import trial_stages  # noqa: E402

# DVC's per-output locks fail at once ("is busy") rather than wait: such errors are retried with this backoff.
BACKOFF: list[float] = [2, 5, 10, 20, 30]
RETRIES: dict[str, Any] = {"retries": 5, "retry_delay_seconds": BACKOFF, "cache_policy": NO_CACHE}


def _is_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except StageError as err:
        return err.transient
    except Exception:
        return False
    return False


@task(name="prepare", retry_condition_fn=_is_transient, **RETRIES)
def prepare(params: Params, params_file: str) -> tuple[Campaign, dict[str, int]]:
    """Records the campaign (`params`, parsed from `params_file`), builds its data, base model and design, and
    opens its study."""
    campaign = Campaign.start(Path(params_file), params=params)
    return campaign, campaign.prepare()


@task(name="run-trial", retry_condition_fn=_is_transient, **RETRIES)
def run_trial(root: str, campaign: str, trial: str, submission: str, adopted: bool = False) -> dict[str, Any]:
    """Runs a recorded trial's stages (e.g. train_lora → score) on a warm worker; returns its metrics. The
    stage functions are those their CLIs run (`stages.trial_stages()`), resolved here, in the worker. An adopted
    trial (left running by a stopped run) skips the stages dvc.lock already records."""
    return run_on_worker(root, campaign, trial, submission, trial_stages(), adopted)


@task(name="untuned", retry_condition_fn=_is_transient, **RETRIES)
def untuned(root: str, campaign: str) -> dict[str, Any]:
    """Evaluates the campaign's base model before any tuning (its `untuned@<campaign>` stage: the function its CLI
    runs, resolved here, in the worker) on a warm worker and records it with DVC — unless dvc.lock records it
    already (a resumed campaign); returns its metrics."""
    from stages.untuned import untuned as stage

    return run_campaign_stage(root, campaign, "untuned", stage)


@task(name="report", retry_condition_fn=_is_transient, **RETRIES)
def report(campaign: Campaign) -> dict[str, Any]:
    """Aggregates the campaign through DVC's report stage."""
    return campaign.report()


class CampaignStopped(RuntimeError):
    """The campaign stopped itself (too many failures); the message says why."""


class CampaignInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM stopped the run, which recorded it and closed what it had started (`flows.stopping`)."""

    def __init__(self, params_file: str, signum: int) -> None:
        self.signum = signum
        super().__init__(
            f"{stopping.name(signum)}: campaign stopped; trials that were running are recorded interrupted and run "
            f"again first on resume: campaign run --params {params_file}"
        )


def local_cluster(workers: int) -> dict[str, Any]:
    """A local Dask cluster of `workers` single-threaded worker processes (one trial each at a time)."""
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": "127.0.0.1:0",
        "silence_logs": logging.WARNING,
    }


@contextmanager
def trial_workers(params: Params) -> Iterator[str]:
    """The Dask scheduler address whose workers run the trials: `campaign.scheduler`, or a local cluster of
    `campaign.workers` processes started now and closed at the end. Either way every worker, and every worker
    that joins later (a restarted one, a new SLURM job), imports the trials' libraries as soon as it starts, while
    Prefect's server starts and the campaign prepares (a Dask worker plugin). (Workers of another scheduler learn
    the Prefect API from the flow's settings, which prefect-dask sends with every task.)"""
    if params.campaign.scheduler:
        _warm_up(params.campaign.scheduler)
        yield params.campaign.scheduler
        return
    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would bury the trials' lines
    environ = dict(os.environ)
    # its workers ignore a Ctrl-C or SIGTERM sent to the process group: the run closes them (flows.stopping)
    with LocalCluster(**local_cluster(params.campaign.workers), preload=[stopping.__name__]) as cluster:
        # Dask's nanny sets OMP_NUM_THREADS=1 (and the like) in this process for its workers: the stage processes
        # that DVC starts from here must not inherit them (the stages pin their own threads: campaign.cpu_threads)
        os.environ.clear()
        os.environ.update(environ)
        print(f"{params.campaign.workers} warm worker(s); Dask dashboard: {cluster.dashboard_link}", flush=True)
        _warm_up(cluster.scheduler_address)
        yield cluster.scheduler_address


def _warm_up(address: str) -> None:
    """Registers the warm-up plugin with the scheduler, from a thread: the flow goes on meanwhile."""

    def register() -> None:
        from distributed import Client

        from hpo.trials.worker import WarmUp

        try:
            with Client(address) as client:
                client.register_plugin(WarmUp(trial_stages()), name="hpo-warm-up")
        except Exception as err:  # only a speed-up: the first trial then imports what it needs itself
            logging.getLogger(__name__).info("warm-up of the trial workers skipped: %s", err)

    threading.Thread(target=register, name="warm-up", daemon=True).start()


@contextmanager
def prefect_api() -> Iterator[Callable[[], AbstractContextManager[Any]]]:
    """Prefect's API for this run: the server `PREFECT_API_URL` names, or a temporary one on 127.0.0.1 started
    now (~10-20 s, while the workers start and import), as Prefect's ephemeral mode would but at an address known
    to the flow's settings, which prefect-dask hands to every task: trial workers in other processes report to
    this server instead of each starting a temporary server of their own.

    Yields `ready`: it waits until the server answers, raises the error that stopped it starting, and returns the
    settings context that points the flow at it. The address is read only once the server is up, because
    Prefect moves the server to another port when the one first chosen was taken in the meantime."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield nullcontext
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer(port=_free_port())
    failed: list[BaseException] = []

    def start() -> None:
        try:
            with stopping.shielded():  # the server outlives a Ctrl-C to the group: the flow reports its end to it
                server.start(timeout=120)
        except BaseException as err:  # handed to `ready`, in the flow's thread
            failed.append(err)

    starting = threading.Thread(target=start, daemon=True)
    starting.start()

    def ready() -> AbstractContextManager[Any]:
        starting.join()
        if failed:
            raise RuntimeError(f"Prefect's temporary server did not start: {failed[0]}") from failed[0]
        return temporary_settings(updates={PREFECT_API_URL: server.api_url})

    try:
        yield ready
    finally:
        if server.server_process is not None:
            _flush_to_prefect()
            server.server_process.kill()  # SIGTERM is blocked in it (`shielded`): Prefect's stop would wait 5 s
        server.stop()


def _flush_to_prefect() -> None:
    """Sends the log lines and events this process has queued for Prefect's API (it sends them in batches, from
    background threads) before the temporary server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_campaign(params: Params, params_file: str) -> dict[str, Any]:
    """Starts Prefect's server and the trial workers side by side, then runs the campaign flow on them (what
    `campaign run` does, with the declaration it parsed and validated once: `params`, from `params_file`).

    Raises:
        CampaignInterrupted: a SIGINT or SIGTERM stopped the run (after the running trials were recorded
            interrupted and the cluster and the temporary server were closed).
    """
    with stopping.handled():
        try:
            with prefect_api() as ready, trial_workers(params) as address, ready():
                return campaign(params_file, scheduler=address, params=params)
        except BaseException as err:
            signum = stopping.noticed(err)
            if signum is None:
                raise
            raise CampaignInterrupted(params_file, signum) from None


@flow(name="campaign")
def campaign(
    params_file: str = "params.yaml", scheduler: str | None = None, params: Params | None = None
) -> dict[str, Any]:
    """Runs (or resumes) the campaign declared in `params_file` on its trial workers; returns the best-trial
    summary.

    Args:
        params_file: the campaign's declaration.
        scheduler: a Dask scheduler's address (default `campaign.scheduler`; unset: a local cluster of
            `campaign.workers` processes for this run).
        params: `params_file` parsed and validated already (`campaign run`); None (a deployment's scheduled run):
            parsed here, once per run.
    """
    if params is None:
        params = load_params(params_file)
    address = scheduler or params.campaign.scheduler
    runner = (
        DaskTaskRunner(address=address)
        if address
        else DaskTaskRunner(cluster_kwargs=local_cluster(params.campaign.workers))
    )
    return trials.with_options(task_runner=runner)(params, params_file)  # type: ignore[arg-type]  # (prefect-dask)


@flow(name="campaign-trials")
def trials(params: Params, params_file: str) -> dict[str, Any]:
    """The campaign's story, on the task runner its parent flow chose.

    With `campaign.workers: N`, N trials run at once; several `campaign run` processes may share one campaign
    (its study and records), each running trials the others do not.
    """
    try:
        c, warm = prepare(params, params_file)
    except BaseException as err:
        stopping.noticed(err)  # a signal during prepare: no trial runs yet
        raise
    if warm["added"] or warm["skipped"]:
        print(f"warm start: {warm['added']} prior observations added, {warm['skipped']} outside the space skipped")
    progress = Progress(c.params)
    live = LiveTrials(c.paths, c.params)
    root = str(c.paths.root.resolve())

    running: dict[PrefectFuture, Trial] = {}
    reference: list[PrefectFuture] = []  # the untuned reference's evaluation, until its outcome is recorded

    def collect_reference() -> None:
        """Waits for the untuned reference and records how it ended (a failure does not stop the campaign)."""
        while reference:
            outcome = _outcome(reference[0].result)
            reference.pop(0)  # (after its result: a signal while it runs still cancels it)
            progress.show_untuned(c.untuned(outcome))

    def submit(trial: Trial, adopted: bool = False) -> PrefectFuture:
        live.start(trial)
        future = run_trial.submit(root, c.name, trial.id, uuid.uuid4().hex, adopted)
        running[future] = trial
        return future

    def finish(future: PrefectFuture) -> None:
        outcome = _outcome(future.result)
        trial = running.pop(future)
        live.stop(trial.id)
        progress.show(trial.id, trial.params, c.finish(trial, outcome))

    try:
        reference.append(untuned.submit(root, c.name))  # beside the baseline and the trials; the report reads it
        if c.params.campaign.workers == 1:  # it runs first anyway: its line comes first
            collect_reference()
        baseline = c.baseline()
        if baseline is not None:
            if baseline.result is None:
                finish(submit(baseline))
            else:
                progress.show(baseline.id, baseline.params, baseline.result)

        queue = c.interrupted()
        for trial in queue:
            print(f"{trial.id:>8}  interrupted earlier: running it again", flush=True)
        while True:
            while len(running) < c.params.campaign.workers:
                adopted = bool(queue)
                next_trial = queue.pop(0) if queue else c.propose()
                if next_trial is None:
                    break
                submit(next_trial, adopted)
            if not running:
                break
            done = next(as_completed([*running, *reference]))
            if done not in running:  # the untuned reference ended
                collect_reference()
                continue
            finish(done)
            stop = c.too_many_failures()
            if stop:
                for future in list(running):
                    finish(future)
                collect_reference()
                live.close()
                report(c)
                raise CampaignStopped(stop)
        collect_reference()
    except BaseException as err:
        signum = stopping.noticed(err)
        if signum is None:
            raise
        live.close()  # Ctrl-C or SIGTERM: what was running is interrupted, recorded so, and run again on resume
        for future in [*running, *reference]:  # on another scheduler's workers: stopped before its next stage
            dask_future = getattr(future, "wrapped_future", None)
            if dask_future is not None:
                dask_future.cancel()
        for tid in c.stopped(list(running.values()), stopping.name(signum)):
            print(f"{tid:>8}  interrupted ({stopping.name(signum)})", flush=True)
        raise

    live.close()
    if c.stop_reason:
        print(f"stopped proposing: {c.stop_reason}", flush=True)
    summary = report(c)
    progress.final(summary)
    return summary


def _outcome(result: Any) -> dict[str, Any] | Exception:
    """A trial's metrics, or the error it raised — a stage's, DVC's, or the engine's when the trial killed every
    worker it ran on (recorded as a failure; the campaign goes on)."""
    try:
        return result()
    except Exception as err:
        return err


if __name__ == "__main__":
    import sys

    path = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    run_campaign(load_params(path), path)
