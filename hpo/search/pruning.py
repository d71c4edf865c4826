"""Multi-fidelity pruning of training trials: the campaign's Optuna pruner, asked while a trial trains, and its
decision recorded as data.

A training trial reports its validation loss at each evaluation interval (`train.eval_interval` optimizer steps)
to the study as an intermediate value — negated when the campaign maximises its score, so that for the pruner,
as for the study, higher is better — and asks the pruner whether to go on. When the pruner says stop, the step is
written into the trial's record (its `trial.yaml`: `pruned: {step, by}`) before the stage finishes, so it is part of
what DVC records for the trial: `dvc repro` rebuilds the trial by training to that step, on the same learning-rate
schedule, without asking a pruner (whose answer depends on which other trials had reported by then).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna

from hpo.config import Params
from hpo.record.layout import BASELINE, CampaignPaths

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
    spec = params.campaign.pruner
    assert spec is not None
    options = ", ".join(f"{k}={v}" for k, v in spec.model_dump(exclude={"name"}).items())
    return f"campaign.pruner {spec.name} ({options})"


def intermediate_value(val_loss: float, direction: str) -> float:
    """The validation loss as the study's intermediate value: negated when the campaign maximises."""
    return -val_loss if direction == "maximize" else val_loss


_studies: dict[tuple[str, str], optuna.Study] = {}


def _study(paths: CampaignPaths, params: Params) -> optuna.Study:
    """The campaign's study as this worker process opens it: once per campaign (an RDB storage keeps one
    connection pool per process), without repairing the journal (the campaign process may be appending)."""
    from hpo.record.study import open_study

    key = (str(paths.dir.resolve()), params.campaign.storage or "")
    if key not in _studies:
        _studies[key] = open_study(paths, params, repair=False)
    return _studies[key]


def recorded_stop(decision: dict[str, Any]) -> Stop:
    """The stop of a trial whose record holds a pruning decision: at the recorded step, by whom it records."""
    step, by = int(decision["step"]), str(decision["by"])
    return lambda reached, _loss: by if reached >= step else None


class AskPruner:
    """The live decision, in the worker that trains a study trial: reports each validation loss to the study and
    asks the campaign's pruner; when it says stop, records the decision in the trial's record first."""

    def __init__(self, paths: CampaignPaths, params: Params, trial: str) -> None:
        self.paths, self.params, self.trial = paths, params, trial
        self._study_trial: optuna.trial.Trial | None = None

    def _open(self) -> optuna.trial.Trial:
        if self._study_trial is None:
            study = _study(self.paths, self.params)
            number = int(self.trial.removeprefix("t"))
            storage_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
            self._study_trial = optuna.trial.Trial(study, storage_id)
        return self._study_trial

    def __call__(self, step: int, val_loss: float) -> str | None:
        from hpo.record.records import record_pruning

        try:
            trial = self._open()
            trial.report(intermediate_value(val_loss, self.params.eval.direction), step)
            if not trial.should_prune():
                return None
        except Exception as err:  # the study unreachable, or the trial finished meanwhile: train on, unpruned
            logging.getLogger(__name__).warning("pruner not asked at step %d: %s: %s", step, type(err).__name__, err)
            return None
        by = describe(self.params)
        record_pruning(self.paths, self.trial, {"step": step, "by": by})
        return by


def stop_for(paths: CampaignPaths, params: Params, trial: str, record: dict[str, Any]) -> Stop | None:
    """How a training stage stops early: at the step its record names (a decision made earlier, or by the run DVC
    recorded), else — only inside a worker that asks (`asking`) — by asking the pruner; else never."""
    if record.get("pruned"):
        return recorded_stop(record["pruned"])
    if _asking and params.campaign.pruner is not None and trial != BASELINE:
        return AskPruner(paths, params, trial)
    return None


_asking = False


@contextmanager
def asking() -> Iterator[None]:
    """Within it, training stages of study trials ask the campaign's pruner (the worker's live run); outside it
    (`dvc repro`, `python -m stages.train_lora`) they follow only the decisions recorded."""
    global _asking
    _asking = True
    try:
        yield
    finally:
        _asking = False
