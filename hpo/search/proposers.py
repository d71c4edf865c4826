"""Proposers: which point of the space a campaign tries next.

- `tpe`, `gp`, `random`, `qmc`: Optuna's `TPESampler`, `GPSampler`, `RandomSampler`, `QMCSampler`, seeded per
  trial from the campaign seed; the design points replace their random start-up trials.
- `skopt`: scikit-optimize's `Optimizer` (a GP with the acquisition from params) driven by ask/tell; it is rebuilt
  from the study's finished trials before every ask, so it needs no state of its own, and its point enters the
  study through `enqueue_trial`.

Design points are enqueued first, so every proposer's first `n_init` trials are the Latin-hypercube points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from hpo.config import Params, derive_seed
from hpo.config.space import Dimension, optuna_distribution, skopt_dimension
from hpo.files import plain
from hpo.search.objectives import Direction, directions


@dataclass(frozen=True)
class Search:
    """How a campaign searches, apart from what it evaluates: the space, the proposer, the design size, the seed
    every other seed derives from, skopt's acquisition and the direction."""

    space: dict[str, Dimension]
    sampler: str = "gp"
    n_init: int = 4
    seed: int = 0
    acquisition: str = "EI"
    direction: str = "maximize"
    objectives: tuple[str, ...] = ("score",)

    @classmethod
    def of(cls, params: Params | Search) -> Search:
        """A campaign's search (a Search is its own)."""
        if isinstance(params, Search):
            return params
        c = params.campaign
        return cls(
            dict(params.space),
            c.sampler,
            c.n_init,
            c.seed,
            c.acquisition,
            params.eval.direction,
            tuple(c.objectives),
        )

    @property
    def directions(self) -> list[Direction]:
        """The study's directions: the score's, then each cost's (minimised)."""
        return directions(self.objectives, self.direction)


def own_trials(study: optuna.Study, states: tuple[optuna.trial.TrialState, ...] | None = None) -> list:
    """The study's trials of this campaign, without prior observations added by a warm start."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if "warm_start_from" not in t.user_attrs]


def make_sampler(params: Params | Search, number: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler that proposes trial `number` (`skopt` proposes outside Optuna and uses random here).

    Samplers are seeded per trial from the campaign seed, so a proposal depends on the study's history and the
    trial number only: a campaign resumed after a crash asks the same questions as one that never stopped.
    TPE treats trials still running (other workers) with the constant-liar strategy. With constraints, TPE and GP
    read each finished trial's violations (`Trial.set_constraint`); random, QMC and skopt ignore them.
    """
    search = Search.of(params)
    kind = search.sampler
    startup = max(search.n_init, 1)
    if kind == "qmc":  # the sequence itself is the state: one scramble seed for the campaign
        return optuna.samplers.QMCSampler(seed=derive_seed(search.seed, "sampler"), scramble=True)
    seed = derive_seed(search.seed, "sampler", number)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)


def distributions(params: Params | Search) -> dict[str, Any]:
    """The Optuna distributions of the campaign's space."""
    return {name: optuna_distribution(dim) for name, dim in Search.of(params).space.items()}


def enqueue_design(study: optuna.Study, points: list[dict[str, Any]]) -> int:
    """Enqueues the design points not yet in the study (by position); returns how many were added."""
    present = len(own_trials(study))
    for point in points[present:]:
        study.enqueue_trial(point)
    return max(0, len(points) - present)


class Proposer:
    """A campaign's proposer, built once per campaign run: its search (space, proposer, seed) and the Optuna
    distributions of its space, read from the declaration once.

    What it cannot keep is one Optuna sampler for the whole run: an Optuna sampler carries a random state (TPE,
    GP and random draw from it; GP also starts each fit from the last one's kernel parameters), so one object
    asked again and again would propose other points than the per-trial seeded samplers do, and a campaign resumed
    in a new process other points than one that never stopped. Each proposal therefore gets the sampler seeded for
    its trial (`make_sampler`), a constructor call, and skopt its `Optimizer` told the study's history
    (`skopt_propose`): the decisions depend on the seed and the study's history only, whichever process asks.
    """

    def __init__(self, params: Params | Search) -> None:
        self.search = Search.of(params)
        self.distributions = distributions(self.search)

    def ask(self, study: optuna.Study) -> optuna.trial.Trial:
        """Asks for the study's next trial (design points first)."""
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if self.search.sampler == "skopt" and not waiting:
            study.enqueue_trial(skopt_propose(study, self.search))
        study.sampler = make_sampler(self.search, len(study.get_trials(deepcopy=False)))
        return study.ask(self.distributions)


def ask(study: optuna.Study, params: Params | Search) -> optuna.trial.Trial:
    """Asks the campaign's proposer for the next trial (design points first): a `Proposer` for one question."""
    return Proposer(params).ask(study)


def skopt_propose(study: optuna.Study, params: Params | Search) -> dict[str, Any]:
    """The next point of scikit-optimize's GP `Optimizer`, told every finished trial of the study."""
    from skopt import Optimizer

    search = Search.of(params)
    names = list(search.space)
    dims = [skopt_dimension(name, search.space[name]) for name in names]
    n = len(study.get_trials(deepcopy=False))
    optimizer = Optimizer(
        dims,
        base_estimator="GP",
        acq_func=search.acquisition,
        n_initial_points=1,
        random_state=derive_seed(search.seed, "skopt", n),
    )
    sign = -1.0 if search.direction == "maximize" else 1.0  # skopt minimises
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
    return {name: plain(value) for name, value in zip(names, point, strict=True)}
