"""A campaign's search strategy as plain ask/tell over any objective, outside the LLM pipeline.

The strategy is exactly what a campaign runs — the Latin-hypercube design points first (seeded as the design
stage seeds them), then the proposer, re-seeded per trial from the campaign seed (`hpo.search.proposers`) — on an
in-memory Optuna study instead of the campaign's record, so it can be benchmarked on synthetic and tabular
problems (`bench/search_quality.py`) and reused by any code that can evaluate a point.

    strategy = Strategy(Search(space, sampler="tpe", n_init=4, seed=0, direction="minimize"))
    for _ in range(50):
        trial = strategy.ask()
        strategy.tell(trial, objective(trial.params))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from hpo.config import derive_seed
from hpo.search.design import latin_hypercube
from hpo.search.proposers import Proposer, Search, enqueue_design, make_sampler


class Strategy:
    """Ask/tell over `search`'s space: design points, then proposals, the same a campaign with this search asks."""

    def __init__(self, search: Search) -> None:
        self.search = search
        self.proposer = Proposer(search)
        self.study = optuna.create_study(directions=search.directions, sampler=make_sampler(search, 0))
        enqueue_design(self.study, latin_hypercube(search.space, search.n_init, derive_seed(search.seed, "design")))

    def ask(self) -> optuna.trial.Trial:
        """The next point to evaluate (`trial.params`)."""
        return self.proposer.ask(self.study)

    def tell(self, trial: optuna.trial.Trial, value: float | list[float] | None) -> None:
        """Records a point's value (one per objective: a list in a multi-objective search); None (or NaN) records
        it as failed, as a campaign records a failed trial."""
        if value is None or (isinstance(value, float) and value != value):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def optimize(self, objective: Callable[[dict[str, Any]], float | None], n_trials: int) -> list[float | None]:
        """Asks, evaluates and tells `n_trials` points in turn; returns their values in order."""
        values = []
        for _ in range(n_trials):
            trial = self.ask()
            value = objective(dict(trial.params))
            self.tell(trial, value)
            values.append(value)
        return values
