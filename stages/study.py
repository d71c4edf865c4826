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

from typing import Any

import optuna

from stages.config import Params, derive_seed
from stages.layout import CampaignPaths
from stages.space import optuna_distribution, skopt_dimension

optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_study(paths: CampaignPaths, params: Params) -> optuna.Study:
    """Opens (or creates) the campaign's study in its journal file."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    paths.dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(paths.journal)))
    return optuna.create_study(
        study_name=params.campaign.name,
        storage=storage,
        direction=params.eval.direction,
        sampler=make_sampler(params),
        load_if_exists=True,
    )


def make_sampler(params: Params) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for the campaign's strategy (`skopt` proposes outside Optuna and uses random here)."""
    seed = derive_seed(params.campaign.seed, "sampler")
    startup = max(params.campaign.n_init, 1)
    kind = params.campaign.sampler
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if kind == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, qmc_type="sobol", scramble=True)
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
    if xs:
        optimizer.tell(xs, ys)
    point = optimizer.ask()
    return {name: _plain(value) for name, value in zip(names, point, strict=True)}


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so they serialise to YAML and JSON."""
    return value.item() if hasattr(value, "item") else value
