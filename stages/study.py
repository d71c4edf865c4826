"""The campaign's Optuna study and the proposers that fill it.

The study lives in an Optuna `JournalStorage` file under the campaign folder, so optuna-dashboard and Optuna's
visualisation open any campaign. Proposers:

- `tpe`, `gp`, `random`, `qmc`: Optuna's `TPESampler`, `GPSampler`, `RandomSampler`, `QMCSampler`, seeded from
  the campaign seed; the design points replace their random start-up trials.
- `skopt`: scikit-optimize's `Optimizer` (a GP with the acquisition from params) driven by ask/tell; it is rebuilt
  from the study's finished trials before every ask, so it needs no state of its own, and its point enters the
  study through `enqueue_trial`.

Design points are enqueued first, so every proposer's first `n_init` trials are the Latin-hypercube points.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna

from stages.config import Params, derive_seed
from stages.layout import CampaignPaths
from stages.space import optuna_distribution, skopt_dimension

optuna.logging.set_verbosity(optuna.logging.WARNING)


HEARTBEAT_SECONDS = 30


def open_study(paths: CampaignPaths, params: Params) -> optuna.Study:
    """Opens (or creates) the campaign's study: an RDB storage when `campaign.storage` is set (PostgreSQL for
    several machines, with heartbeats so a dead worker's trials go stale), else the journal file."""
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

        repair_journal(paths.journal)
        storage = JournalStorage(JournalFileBackend(str(paths.journal)))
    return optuna.create_study(
        study_name=params.campaign.name,
        storage=storage,
        direction=params.eval.direction,
        sampler=make_sampler(params, 0),
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


def make_sampler(params: Params, number: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler that proposes trial `number` (`skopt` proposes outside Optuna and uses random here).

    Samplers are seeded per trial from the campaign seed, so a proposal depends on the study's history and the
    trial number only: a campaign resumed after a crash asks the same questions as one that never stopped.
    TPE treats trials still running (other workers) with the constant-liar strategy.
    """
    kind = params.campaign.sampler
    startup = max(params.campaign.n_init, 1)
    if kind == "qmc":  # the sequence itself is the state: one scramble seed for the campaign
        return optuna.samplers.QMCSampler(seed=derive_seed(params.campaign.seed, "sampler"), scramble=True)
    seed = derive_seed(params.campaign.seed, "sampler", number)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)


def own_trials(study: optuna.Study, states: tuple[optuna.trial.TrialState, ...] | None = None) -> list:
    """The study's trials of this campaign, without prior observations added by a warm start."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if "warm_start_from" not in t.user_attrs]


def distributions(params: Params) -> dict[str, Any]:
    """The Optuna distributions of the campaign's space."""
    return {name: optuna_distribution(dim) for name, dim in params.space.items()}


def enqueue_design(study: optuna.Study, points: list[dict[str, Any]]) -> int:
    """Enqueues the design points not yet in the study (by position); returns how many were added."""
    present = len(own_trials(study))
    for point in points[present:]:
        study.enqueue_trial(point)
    return max(0, len(points) - present)


def ask(study: optuna.Study, params: Params) -> optuna.trial.Trial:
    """Asks the campaign's proposer for the next trial (design points first)."""
    dists = distributions(params)
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if params.campaign.sampler == "skopt" and not waiting:
        study.enqueue_trial(skopt_propose(study, params))
    study.sampler = make_sampler(params, len(study.get_trials(deepcopy=False)))
    return study.ask(dists)


def skopt_propose(study: optuna.Study, params: Params) -> dict[str, Any]:
    """The next point of scikit-optimize's GP `Optimizer`, told every finished trial of the study."""
    from skopt import Optimizer

    names = list(params.space)
    dims = [skopt_dimension(name, params.space[name]) for name in names]
    n = len(study.get_trials(deepcopy=False))
    optimizer = Optimizer(
        dims,
        base_estimator="GP",
        acq_func=params.campaign.acquisition,
        n_initial_points=1,
        random_state=derive_seed(params.campaign.seed, "skopt", n),
    )
    sign = -1.0 if params.eval.direction == "maximize" else 1.0  # skopt minimises
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    xs = [[t.params[name] for name in names] for t in done if all(name in t.params for name in names)]
    ys = [sign * float(t.value or 0.0) for t in done if all(name in t.params for name in names)]
    # Trials still running elsewhere are told as the best value so far ("constant liar", skopt's cl_min), so
    # parallel workers are not sent to the same point.
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    pending = [[t.params[name] for name in names] for t in running if all(name in t.params for name in names)]
    if pending and ys:
        xs, ys = xs + pending, ys + [min(ys)] * len(pending)
    if xs:
        optimizer.tell(xs, ys)
    point = optimizer.ask()
    return {name: _plain(value) for name, value in zip(names, point, strict=True)}


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so they serialise to YAML and JSON."""
    return value.item() if hasattr(value, "item") else value


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

    storage: Any = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        return lambda: None
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial._trial_id)
            stop.wait(interval)

    threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial.number}").start()
    return stop.set


def fail_stale(study: optuna.Study) -> None:
    """Fails trials whose worker stopped beating (RDB storage) and enqueues them again with the same params,
    Optuna's own `fail_stale_trials` with `RetryFailedTrialCallback`."""
    if getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None:
        optuna.storages.fail_stale_trials(study)
