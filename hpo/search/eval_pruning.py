"""Instance-wise pruning of evaluation (`eval.pruner`: Optuna's `WilcoxonPruner`): the campaign's order and chunks,
the pruner's paired comparison, a decision recorded as data replayed, and what a trial's record says about it.

A trial's evaluation instances — lm-eval's (task, doc_id) — are evaluated in one order fixed by the campaign seed
(`InstanceWise.order`: the same for every trial, so results pair up), `chunk` at a time; after each chunk the
pruner compares the instances' values so far with the best trial's on the same instances (a paired signed-rank
test: `Pairing`) and may stop the trial. The number of instances evaluated is then written into the trial's record
(`eval_pruned: {instances, by}`) before the stage finishes: `dvc repro` evaluates exactly those, in the same
chunks, without a study (`recorded_eval_stop`; docs/design.md#decisions). Each evaluated instance's value
is kept in the trial's `instances.jsonl` (`instances_jsonl`), through which later trials pair with it.

This module holds the decisions themselves; asking the pruner against the campaign's study while a trial is
evaluated, and recording what it says, is the worker's (`hpo.trials.pruners`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna

from hpo.config import Params, derive_seed
from hpo.search.training_pruning import named

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


def instance_wise(params: Params, stop: EvalStop) -> InstanceWise | None:
    """A scoring stage's evaluation with `eval.pruner`: in the campaign's order and chunks, asking `stop` after
    each chunk; None without `eval.pruner` (lm-eval's own order, all at once)."""
    spec = params.eval.pruner
    if spec is None:
        return None
    return InstanceWise(seed=derive_seed(params.campaign.seed, "eval-order"), chunk=spec.chunk, stop=stop)


def eval_describe(params: Params) -> str:
    """The evaluation pruner as a trial's record names it: `eval.pruner wilcoxon (p_threshold=0.1, …)`."""
    return named("eval.pruner", params.eval.pruner)


def never(_values: Sequence[tuple[Instance, float]]) -> str | None:
    """An evaluation no pruner stops (the baseline's, the untuned reference's, or one outside a worker that asks)."""
    return None


def recorded_eval_stop(decision: dict[str, Any]) -> EvalStop:
    """The stop of a trial whose record holds an evaluation-pruning decision: after the recorded instances."""
    instances, by = int(decision["instances"]), str(decision["by"])
    return lambda values: by if len(values) >= instances else None


def wilcoxon(params: Params) -> optuna.pruners.WilcoxonPruner:
    """The Optuna pruner `eval.pruner` declares (Optuna calls it experimental: its warning is silenced)."""
    spec = params.eval.pruner
    assert spec is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(p_threshold=spec.p_threshold, n_startup_steps=spec.n_startup_steps)


@dataclass
class Pairing:
    """The best trial's per-instance values as an in-memory study holding that one trial, its values as
    intermediate values (Optuna's pairing by step: one step per instance, numbered in `steps`), against which the
    `WilcoxonPruner` judges a running trial's values on the same instances. So the campaign's study keeps its own
    pruner (`campaign.pruner`, on validation losses) and both prune the same trial at different times."""

    best: str
    study: optuna.Study
    steps: dict[Instance, int]

    @classmethod
    def of(cls, best: str, values: dict[Instance, float], direction: Literal["maximize", "minimize"]) -> Pairing:
        """The pairing with trial `best`, whose instances' values are `values`, in a study of `direction`."""
        steps = {key: n for n, key in enumerate(sorted(values))}
        study = optuna.create_study(direction=direction)
        study.add_trial(
            optuna.trial.create_trial(value=0.0, intermediate_values={steps[k]: v for k, v in values.items()})
        )
        return cls(best, study, steps)

    def prunes(self, pruner: optuna.pruners.BasePruner, values: Sequence[tuple[Instance, float]]) -> bool:
        """Whether `pruner` stops a trial whose instances so far have `values` (an instance the best trial lacks
        gets a step of its own: paired with nothing)."""
        for key, _ in values:
            self.steps.setdefault(key, len(self.steps))
        running = optuna.trial.create_trial(
            state=optuna.trial.TrialState.RUNNING, intermediate_values={self.steps[k]: v for k, v in values}
        )
        return bool(pruner.prune(self.study, running))


def instances_jsonl(values: Sequence[tuple[Instance, float]]) -> str:
    """A trial's `instances.jsonl`: one `{task, doc_id, value}` per evaluated instance, in evaluation order."""
    return "".join(
        json.dumps({"task": t, "doc_id": d, "value": round(float(v), 6)}, sort_keys=True) + "\n" for (t, d), v in values
    )


def instance_values(lines: str) -> dict[Instance, float]:
    """A trial's `instances.jsonl` (one `{task, doc_id, value}` per evaluated instance) as values by instance."""
    values = {}
    for line in lines.splitlines():
        row = json.loads(line)
        values[(str(row["task"]), int(row["doc_id"]))] = float(row["value"])
    return values


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
