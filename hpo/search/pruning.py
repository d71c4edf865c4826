"""Multi-fidelity pruning of training trials: the campaign's Optuna pruner, asked while a trial trains, and its
decision recorded as data.

A training trial reports its validation loss at each evaluation interval (`train.eval_interval` optimizer steps)
to the study as an intermediate value — negated when the campaign maximises its score, so that for the pruner,
as for the study, higher is better — and asks the pruner whether to go on. When the pruner says stop, the step is
written into the trial's record (its `trial.yaml`: `pruned: {step, by}`) before the stage finishes, so it is part of
what DVC records for the trial: `dvc repro` rebuilds the trial by training to that step, on the same learning-rate
schedule, without asking a pruner (whose answer depends on which other trials had reported by then).

Evaluation is pruned instance by instance (`eval.pruner`: Optuna's `WilcoxonPruner`). A trial's evaluation
instances — lm-eval's (task, doc_id) — are evaluated in one order fixed by the campaign seed (`InstanceWise.order`:
the same for every trial, so results pair up), `chunk` at a time; after each chunk the pruner compares the
instances' values so far with the best trial's on the same instances (a paired signed-rank test) and may stop the
trial. The number of instances evaluated is then written into the trial's record (`eval_pruned: {instances, by}`)
before the stage finishes: `dvc repro` evaluates exactly those, in the same chunks, without a study.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna

from hpo.config import Params, derive_seed
from hpo.record.layout import BASELINE, UNTUNED, CampaignPaths

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
    return _named("campaign.pruner", params.campaign.pruner)


def _named(key: str, spec: Any) -> str:
    """A declared pruner by its key, name and options: `<key> <name> (<option>=<value>, …)`."""
    assert spec is not None
    options = ", ".join(f"{k}={v}" for k, v in spec.model_dump(exclude={"name"}).items())
    return f"{key} {spec.name} ({options})"


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


# --- instance-wise pruning of evaluation (eval.pruner) -----------------------------------------------------------

Instance = tuple[str, int]  # lm-eval's (task name, doc_id)
# Called after each chunk with every (instance, value) evaluated so far, in order; returns who stopped the
# evaluation there (recorded), or None to go on.
EvalStop = Callable[[Sequence[tuple[Instance, float]]], str | None]


@dataclass
class InstanceWise:
    """A trial's evaluation in chunks of instances, in the campaign's order, asking `stop` after each chunk.

    The LM (`hpo.evaluation`) evaluates the requests of `chunk` instances at a time and hands each instance's
    results to `judge` — set by the stage: the task's own `process_results`, i.e. lm-eval's per-instance metric —
    which gives the instance's value; once `stop` answers, the other instances are not evaluated."""

    seed: int
    chunk: int
    stop: EvalStop
    judge: Callable[[Instance, Any], float] | None = None
    values: list[tuple[Instance, float]] = field(default_factory=list)
    stopped_by: str | None = None
    total: int = 0
    _pending: list[tuple[Instance, Any]] = field(default_factory=list)

    def order(self, instances: Sequence[Instance]) -> list[Instance]:
        """The campaign's evaluation order: by a hash of (campaign seed, task, doc_id), so an instance's place
        does not depend on the trial, nor on which other instances are evaluated."""
        return sorted(instances, key=lambda i: (derive_seed(self.seed, "eval-order", *i), i))

    def begin(self, instances: Sequence[Instance]) -> list[Instance]:
        """`instances` (one request type's) in the campaign's order, counted into `total`."""
        ordered = self.order(instances)
        self.total += len(ordered)
        return ordered

    def run(self, instances: Sequence[Instance], evaluate: Callable[[list[Instance]], list[Any]]) -> None:
        """Evaluates `instances` in the campaign's order, a chunk at a time (`evaluate(chunk)` returns each one's
        results), until `stop` answers."""
        ordered = self.begin(instances)
        for start, end in self.cuts(0, len(ordered)):
            if self.stopped_by is not None:
                return
            self.evaluated(ordered[start:end], evaluate(ordered[start:end]))

    def cuts(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The range [start, stop) of the ordered instances cut where a chunk ends."""
        bounds = [start, *range((start // self.chunk + 1) * self.chunk, stop, self.chunk), stop]
        return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if a < b]

    def evaluated(self, chosen: list[Instance], results: list[Any]) -> None:
        """Instances just evaluated, with their results: once a chunk is full (or every instance is in), they are
        judged and `stop` is asked."""
        self._pending += zip(chosen, results, strict=True)
        done = len(self.values) + len(self._pending)
        if done % self.chunk == 0 or done == self.total:
            self.flush()
            self.stopped_by = self.stop(self.values)

    def flush(self) -> None:
        """Judges the instances evaluated since the last full chunk; alone (without asking `stop`) when rule 2
        stopped the evaluation in the middle of a chunk: what was sampled is still judged and recorded."""
        assert self.judge is not None, "the stage sets the judge before lm-eval runs"
        self.values += [(i, self.judge(i, r)) for i, r in self._pending]
        self._pending = []


def eval_describe(params: Params) -> str:
    """The evaluation pruner as a trial's record names it: `eval.pruner wilcoxon (p_threshold=0.1, …)`."""
    return _named("eval.pruner", params.eval.pruner)


def never(_values: Sequence[tuple[Instance, float]]) -> str | None:
    """An evaluation no pruner stops (the baseline's, the untuned reference's, or one outside a worker that asks)."""
    return None


def recorded_eval_stop(decision: dict[str, Any]) -> EvalStop:
    """The stop of a trial whose record holds an evaluation-pruning decision: after the recorded instances."""
    instances, by = int(decision["instances"]), str(decision["by"])
    return lambda values: by if len(values) >= instances else None


def instances_jsonl(values: Sequence[tuple[Instance, float]]) -> str:
    """A trial's `instances.jsonl`: one `{task, doc_id, value}` per evaluated instance, in evaluation order."""
    return "".join(
        json.dumps({"task": t, "doc_id": d, "value": round(float(v), 6)}, sort_keys=True) + "\n" for (t, d), v in values
    )


def evaluation_record(gate: InstanceWise) -> dict[str, Any]:
    """What a trial's metrics say about its instance-wise evaluation: the instances evaluated, of how many, the
    share saved and, when the pruner stopped it, by whom."""
    record: dict[str, Any] = {
        "instances": len(gate.values),
        "of": gate.total,
        "saved": round(1 - len(gate.values) / gate.total, 6) if gate.total else 0.0,
    }
    if gate.stopped_by is not None:
        record["pruned_by"] = gate.stopped_by
    return record


def eval_reason(gate: InstanceWise) -> str:
    """Why the evaluation pruner stopped a trial (its metrics' `reason`)."""
    return f"pruned by {gate.stopped_by} after {len(gate.values)} of {gate.total} instances"


def instance_values(lines: str) -> dict[Instance, float]:
    """A trial's `instances.jsonl` (one `{task, doc_id, value}` per evaluated instance) as values by instance."""
    values = {}
    for line in lines.splitlines():
        row = json.loads(line)
        values[(str(row["task"]), int(row["doc_id"]))] = float(row["value"])
    return values


class AskEvalPruner:
    """The live decision while a study trial is evaluated: after each chunk, Optuna's `WilcoxonPruner` compares
    the trial's values so far with the study's best trial's values on the same instances (its `instances.jsonl`);
    when it says stop, the decision is recorded in the trial's record first.

    The pruner is asked on an in-memory study holding the best trial with its per-instance values as intermediate
    values (Optuna's pairing by step: one step per instance), so the campaign's study keeps its own pruner
    (`campaign.pruner`, on validation losses) and both prune the same trial at different times."""

    def __init__(self, paths: CampaignPaths, params: Params, trial: str) -> None:
        self.paths, self.params, self.trial = paths, params, trial
        spec = params.eval.pruner
        assert spec is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.pruner = optuna.pruners.WilcoxonPruner(
                p_threshold=spec.p_threshold, n_startup_steps=spec.n_startup_steps
            )
        self._paired: tuple[str, optuna.Study, dict[Instance, int]] | None = None

    def _pairing(self) -> tuple[str, optuna.Study, dict[Instance, int]] | None:
        """The study's best complete trial, as an in-memory study holding it with its per-instance values (one step
        per instance, numbered in `steps`), built once per trial (a better trial finishing meanwhile is seen by the
        next trial); None while there is none with instances to pair with."""
        if self._paired is None:
            try:
                best = _study(self.paths, self.params).best_trial
            except ValueError:  # no complete trial yet
                return None
            tid = best.user_attrs.get("trial_id")
            file = self.paths.trial(str(tid)).dir / "instances.jsonl" if tid else None
            if file is None or not file.is_file():  # a warm-start prior: no instances to pair with
                return None
            values = instance_values(file.read_text())
            steps = {key: n for n, key in enumerate(sorted(values))}
            paired = optuna.create_study(direction=self.params.eval.direction)
            paired.add_trial(
                optuna.trial.create_trial(value=0.0, intermediate_values={steps[k]: v for k, v in values.items()})
            )
            self._paired = (str(tid), paired, steps)
        return self._paired

    def __call__(self, values: Sequence[tuple[Instance, float]]) -> str | None:
        from hpo.record.records import record_pruning

        try:
            found = self._pairing()
            if found is None:
                return None
            best_id, paired, steps = found
            for key, _ in values:  # an instance the best trial lacks gets a step of its own: paired with nothing
                steps.setdefault(key, len(steps))
            running = optuna.trial.create_trial(
                state=optuna.trial.TrialState.RUNNING, intermediate_values={steps[k]: v for k, v in values}
            )
            if not self.pruner.prune(paired, running):
                return None
        except Exception as err:  # the study unreachable: evaluate on, unpruned
            logging.getLogger(__name__).warning("eval.pruner not asked: %s: %s", type(err).__name__, err)
            return None
        by = f"{eval_describe(self.params)}: worse than {best_id} on the same instances"
        record_pruning(self.paths, self.trial, {"instances": len(values), "by": by}, key="eval_pruned")
        return by


def eval_stop_for(paths: CampaignPaths, params: Params, trial: str, record: dict[str, Any]) -> InstanceWise | None:
    """How a scoring stage evaluates with `eval.pruner`: in the campaign's chunks, stopping after the instances
    its record names (a decision made earlier, or by the run DVC recorded), else — only inside a worker that asks —
    where the pruner says, else never (the baseline, the untuned reference, a rebuild of a trial evaluated to the
    end); None without `eval.pruner` (lm-eval's own order, all at once)."""
    spec = params.eval.pruner
    if spec is None:
        return None
    stop: EvalStop = never
    if record.get("eval_pruned"):
        stop = recorded_eval_stop(record["eval_pruned"])
    elif _asking and trial not in (BASELINE, UNTUNED):
        stop = AskEvalPruner(paths, params, trial)
    return InstanceWise(seed=derive_seed(params.campaign.seed, "eval-order"), chunk=spec.chunk, stop=stop)
