"""The campaign's Optuna study: its storage, and which process runs which trial.

The study lives in an Optuna `JournalStorage` file under the campaign folder (or an RDB such as PostgreSQL when
`campaign.storage` is set), so optuna-dashboard and Optuna's visualisation open any campaign. Each trial records
the process that runs it (`host:pid`), so a resumed campaign tells trials of live workers from interrupted ones;
with an RDB storage, heartbeats do the same across machines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna

from hpo.config import Params
from hpo.internals.optuna import heartbeat_interval, record_heartbeat
from hpo.layout import CampaignPaths
from hpo.search.proposers import Search, make_sampler, own_trials
from hpo.search.training_pruning import make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)


HEARTBEAT_SECONDS = 30


def open_study(paths: CampaignPaths, params: Params, repair: bool = True) -> optuna.Study:
    """Opens (or creates) the campaign's study: an RDB storage when `campaign.storage` is set (PostgreSQL for
    several machines, with heartbeats so a dead worker's trials go stale), else the journal file (whose torn last
    record is cut off first unless `repair` is False: a trial worker opens it while the campaign writes)."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    storage: optuna.storages.BaseStorage
    if params.campaign.storage:
        storage = optuna.storages.RDBStorage(
            params.campaign.storage,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=3 * HEARTBEAT_SECONDS,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=3),
        )
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        if repair:
            repair_journal(paths.journal)
        storage = JournalStorage(JournalFileBackend(str(paths.journal)))
    return optuna.create_study(
        study_name=params.campaign.name,
        storage=storage,
        directions=Search.of(params).directions,
        sampler=make_sampler(params, 0),
        pruner=make_pruner(params),
        load_if_exists=True,
    )


def repair_journal(path: Path) -> int:
    """Cuts a torn last record (a write stopped by a crash leaves a line without its newline) off the journal.

    Optuna skips such a line when reading, but the next append would be glued to it and lost too.

    Returns:
        The number of bytes removed.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
    return len(data) - keep


WORKER = "worker"


def worker_id() -> str:
    """This process, as recorded on the trials it runs: `host:pid`."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def claim(trial: optuna.trial.Trial) -> None:
    """Marks a trial as run by this process (a resumed campaign tells live workers' trials from dead ones')."""
    trial.set_user_attr(WORKER, worker_id())


def orphaned(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Running trials whose worker is gone: a process on this host that no longer exists, or none recorded.

    Trials of workers on other hosts are left alone here; with an RDB storage their heartbeats tell (see
    `fail_stale`)."""
    import socket

    import psutil

    host = socket.gethostname()
    found = []
    for t in own_trials(study, (optuna.trial.TrialState.RUNNING,)):
        owner = str(t.user_attrs.get(WORKER, ""))
        owner_host, _, pid = owner.rpartition(":")
        if not owner or (owner_host == host and not (pid.isdigit() and psutil.pid_exists(int(pid)))):
            found.append(t)
    return found


def heartbeat(study: optuna.Study, trial: optuna.trial.Trial) -> Any:
    """Starts recording the trial's heartbeat when the storage keeps heartbeats (RDB); returns a stopper."""
    import threading

    interval = heartbeat_interval(study)
    if interval is None:
        return lambda: None
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            record_heartbeat(study, trial)
            stop.wait(interval)

    threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial.number}").start()
    return stop.set


def fail_stale(study: optuna.Study) -> None:
    """Fails trials whose worker stopped beating (RDB storage) and enqueues them again with the same params,
    Optuna's own `fail_stale_trials` with `RetryFailedTrialCallback`."""
    if heartbeat_interval(study) is not None:
        optuna.storages.fail_stale_trials(study)
