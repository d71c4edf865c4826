"""The live pruners a warm worker hands a study trial's stages, and the decisions they record.

Whether a stage asks a pruner is an argument of the stage function (docs/design.md#no-hidden-switches): the
worker that runs a study trial passes `Pruners` — the campaign's study, which the worker opened once (`Studies`) —
and a stage builds its stop from it (`stop_for` while it trains, `eval_stop_for` while it is evaluated). Without it
(`dvc repro`, `python -m stages.<name>`) a stage follows only the decisions its trial's record holds. Either way a
decision recorded earlier is followed first, so a rebuild trains and evaluates exactly what the live run did.

- `AskPruner`: while a study trial trains, reports each validation loss to the study and asks the campaign's
  pruner (`campaign.pruner`, `hpo.search.training_pruning`);
- `AskEvalPruner`: while it is evaluated, asks `eval.pruner` after each chunk, against the study's best trial on the
  same instances (`hpo.search.eval_pruning`).

When either says stop, the decision is written into the trial's record (`trial.yaml`: `pruned` or `eval_pruned`)
before the stage finishes, so it is part of what DVC records for the trial (docs/design.md#decisions).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from hpo.config import Params
from hpo.internals.optuna import trial_by_number
from hpo.layout import BASELINE, UNTUNED, CampaignPaths
from hpo.record.records import record_pruning
from hpo.search.eval_pruning import (
    EvalStop,
    Instance,
    InstanceWise,
    Pairing,
    eval_describe,
    instance_values,
    instance_wise,
    never,
    recorded_eval_stop,
    wilcoxon,
)
from hpo.search.study import open_study
from hpo.search.training_pruning import Stop, describe, intermediate_value, recorded_stop


class Studies:
    """The campaigns' studies a worker opened, kept by the worker for as long as it lives (its warm-up plugin holds
    them: `hpo.trials.worker.WarmUp`): each opened once per campaign and storage (an RDB storage keeps one
    connection pool per process), without repairing the journal (the campaign process may be appending)."""

    def __init__(self) -> None:
        self._opened: dict[tuple[str, str], optuna.Study] = {}
        self._lock = threading.Lock()  # (a worker with several threads runs several trials)

    def open(self, paths: CampaignPaths, params: Params) -> optuna.Study:
        """The campaign's study, opened the first time it is asked for."""
        key = (str(paths.dir.resolve()), params.campaign.storage or "")
        with self._lock:
            if key not in self._opened:
                self._opened[key] = open_study(paths, params, repair=False)
            return self._opened[key]

    def __reduce__(self) -> tuple[type[Studies], tuple[()]]:
        # (the plugin that holds them is pickled on its way to the workers: each worker opens its own)
        return type(self), ()


@dataclass(frozen=True)
class Pruners:
    """What a study trial's stages may ask, in the worker that runs it: the campaign's pruners on the campaign's
    study (opened from `studies` when first asked). A stage given none asks no pruner."""

    paths: CampaignPaths
    params: Params
    studies: Studies

    def study(self) -> optuna.Study:
        """The campaign's study, as this worker opened it."""
        return self.studies.open(self.paths, self.params)


def stop_for(params: Params, trial: str, record: dict[str, Any], pruners: Pruners | None) -> Stop | None:
    """How a training stage stops early: at the step its record names (a decision made earlier, or by the run DVC
    recorded), else — only when given `pruners` (a worker's live run), for a study trial — by asking the campaign's
    pruner; else never."""
    if record.get("pruned"):
        return recorded_stop(record["pruned"])
    if pruners is not None and params.campaign.pruner is not None and trial != BASELINE:
        return AskPruner(pruners, trial)
    return None


def eval_stop_for(params: Params, trial: str, record: dict[str, Any], pruners: Pruners | None) -> InstanceWise | None:
    """How a scoring stage evaluates with `eval.pruner`: in the campaign's chunks, stopping after the instances
    its record names (a decision made earlier, or by the run DVC recorded), else — only when given `pruners`, for a
    study trial — where the pruner says, else never (the baseline, the untuned reference, a rebuild of a trial
    evaluated to the end); None without `eval.pruner` (lm-eval's own order, all at once)."""
    stop: EvalStop = never
    if record.get("eval_pruned"):
        stop = recorded_eval_stop(record["eval_pruned"])
    elif pruners is not None and params.eval.pruner is not None and trial not in (BASELINE, UNTUNED):
        stop = AskEvalPruner(pruners, trial)
    return instance_wise(params, stop)


class AskPruner:
    """The live decision while a study trial trains: reports each validation loss to the study and asks the
    campaign's pruner; when it says stop, records the decision in the trial's record first."""

    def __init__(self, pruners: Pruners, trial: str) -> None:
        self.pruners, self.trial = pruners, trial
        self._study_trial: optuna.trial.Trial | None = None

    def _open(self) -> optuna.trial.Trial:
        if self._study_trial is None:
            self._study_trial = trial_by_number(self.pruners.study(), int(self.trial.removeprefix("t")))
        return self._study_trial

    def __call__(self, step: int, val_loss: float) -> str | None:
        params = self.pruners.params
        try:
            trial = self._open()
            trial.report(intermediate_value(val_loss, params.eval.direction), step)
            if not trial.should_prune():
                return None
        except Exception as err:  # the study unreachable, or the trial finished meanwhile: train on, unpruned
            logging.getLogger(__name__).warning("pruner not asked at step %d: %s: %s", step, type(err).__name__, err)
            return None
        by = describe(params)
        record_pruning(self.pruners.paths, self.trial, {"step": step, "by": by})
        return by


class AskEvalPruner:
    """The live decision while a study trial is evaluated: after each chunk, Optuna's `WilcoxonPruner` compares
    the trial's values so far with the study's best trial's values on the same instances (its `instances.jsonl`,
    `Pairing`); when it says stop, the decision is recorded in the trial's record first."""

    def __init__(self, pruners: Pruners, trial: str) -> None:
        self.pruners, self.trial = pruners, trial
        self.pruner = wilcoxon(pruners.params)
        self._paired: Pairing | None = None

    def _pairing(self) -> Pairing | None:
        """The pairing with the study's best complete trial, built once per trial (a better trial finishing
        meanwhile is seen by the next trial); None while there is none with instances to pair with."""
        if self._paired is None:
            try:
                best = self.pruners.study().best_trial
            except ValueError:  # no complete trial yet
                return None
            tid = best.user_attrs.get("trial_id")
            file = self.pruners.paths.trial(str(tid)).dir / "instances.jsonl" if tid else None
            if file is None or not file.is_file():  # a warm-start prior: no instances to pair with
                return None
            values = instance_values(file.read_text())
            self._paired = Pairing.of(str(tid), values, self.pruners.params.eval.direction)
        return self._paired

    def __call__(self, values: Sequence[tuple[Instance, float]]) -> str | None:
        try:
            paired = self._pairing()
            if paired is None or not paired.prunes(self.pruner, values):
                return None
        except Exception as err:  # the study unreachable: evaluate on, unpruned
            logging.getLogger(__name__).warning("eval.pruner not asked: %s: %s", type(err).__name__, err)
            return None
        by = f"{eval_describe(self.pruners.params)}: worse than {paired.best} on the same instances"
        record_pruning(self.pruners.paths, self.trial, {"instances": len(values), "by": by}, key="eval_pruned")
        return by
