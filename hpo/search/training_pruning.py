"""Multi-fidelity pruning of training trials (`campaign.pruner`): the campaign's Optuna pruner, what a trial
reports to it, and a decision recorded as data replayed.

A training trial reports its validation loss at each evaluation interval (`train.eval_interval` optimizer steps)
to the study as an intermediate value — negated when the campaign maximises its score, so that for the pruner,
as for the study, higher is better — and asks the pruner whether to go on. When the pruner says stop, the step is
written into the trial's record (its `trial.yaml`: `pruned: {step, by}`) before the stage finishes, so it is part of
what DVC records for the trial: `dvc repro` rebuilds the trial by training to that step, on the same learning-rate
schedule, without asking a pruner (whose answer depends on which other trials had reported by then)
(docs/design.md#decisions).

This module holds the decisions themselves; asking the campaign's study while a trial trains, and recording what
it says, is the worker's (`hpo.trials.pruners`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from hpo.config import Params

# Called after each validation during training with (step, validation loss); returns who stopped the trial there
# (recorded as `pruned.by`), or None to go on.
Stop = Callable[[int, float], str | None]


def make_pruner(params: Params) -> optuna.pruners.BasePruner:
    """The Optuna pruner `campaign.pruner` declares (`NopPruner` when none is)."""
    spec = params.campaign.pruner
    if spec is None:
        return optuna.pruners.NopPruner()
    options = spec.model_dump(exclude={"name"})
    if spec.name == "median":
        return optuna.pruners.MedianPruner(**options)
    if spec.name == "percentile":
        return optuna.pruners.PercentilePruner(**options)
    if spec.name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(**options)
    return optuna.pruners.HyperbandPruner(max_resource=params.train.max_steps, **options)


def describe(params: Params) -> str:
    """The pruner as a trial's record names it: `campaign.pruner median (n_startup_trials=4, …)`."""
    return named("campaign.pruner", params.campaign.pruner)


def named(key: str, spec: Any) -> str:
    """A declared pruner by its key, name and options: `<key> <name> (<option>=<value>, …)`."""
    assert spec is not None
    options = ", ".join(f"{k}={v}" for k, v in spec.model_dump(exclude={"name"}).items())
    return f"{key} {spec.name} ({options})"


def intermediate_value(val_loss: float, direction: str) -> float:
    """The validation loss as the study's intermediate value: negated when the campaign maximises."""
    return -val_loss if direction == "maximize" else val_loss


def recorded_stop(decision: dict[str, Any]) -> Stop:
    """The stop of a trial whose record holds a pruning decision: at the recorded step, by whom it records."""
    step, by = int(decision["step"]), str(decision["by"])
    return lambda reached, _loss: by if reached >= step else None
