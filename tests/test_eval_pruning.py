"""Instance-wise pruning of evaluation (`eval.pruner`): the campaign's order and chunks, the recorded stop that a
rebuild follows, and Optuna's WilcoxonPruner asked against the study's best trial on the same instances."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from hpo.config import load_params
from hpo.layout import CampaignPaths
from hpo.record.records import read_trial
from hpo.search.eval_pruning import InstanceWise, instance_values, instances_jsonl, never, recorded_eval_stop
from hpo.search.study import open_study
from hpo.trials.pruners import AskEvalPruner, Pruners, Studies, eval_stop_for

from .helpers import ROOT

INSTANCES = [("tinytopic", d) for d in range(40)]


def _run(gate: InstanceWise, value: Any = 1.0) -> list[tuple[str, int]]:
    """Runs the gate over INSTANCES with a judge giving `value` (a function of the instance, or a constant);
    returns the instances evaluated, in order."""
    evaluated: list[tuple[str, int]] = []

    def evaluate(chosen: list[tuple[str, int]]) -> list[Any]:
        evaluated.extend(chosen)
        return [None] * len(chosen)

    gate.judge = lambda i, _: value(i) if callable(value) else value
    gate.run(INSTANCES, evaluate)
    return evaluated


def test_the_order_is_the_campaigns_and_a_subset_keeps_it() -> None:
    gate = InstanceWise(seed=5, chunk=7, stop=never)
    order = gate.order(INSTANCES)
    assert sorted(order) == sorted(INSTANCES) and order != INSTANCES  # shuffled, every instance once
    assert gate.order(list(reversed(INSTANCES))) == order  # whatever order lm-eval hands them in
    subset = INSTANCES[::3]
    assert gate.order(subset) == [i for i in order if i in subset]  # an instance's place is its own
    assert InstanceWise(seed=6, chunk=7, stop=never).order(INSTANCES) != order  # another campaign, another order


def test_chunks_and_cuts() -> None:
    gate = InstanceWise(seed=5, chunk=10, stop=never)
    assert gate.cuts(0, 25) == [(0, 10), (10, 20), (20, 25)]
    assert gate.cuts(3, 12) == [(3, 10), (10, 12)]  # rule 2's ranges are cut where a chunk ends
    assert gate.cuts(4, 8) == [(4, 8)]
    asked: list[int] = []

    def stop(values: Any) -> str | None:
        asked.append(len(values))
        return "the test" if len(values) >= 20 else None

    gate = InstanceWise(seed=5, chunk=10, stop=stop)
    evaluated = _run(gate)
    assert asked == [10, 20] and len(evaluated) == 20 and gate.stopped_by == "the test"
    assert [i for i, _ in gate.values] == gate.order(INSTANCES)[:20] and gate.total == 40
    # the rest of a range after a chunk that ended full is judged at the last instance
    gate = InstanceWise(seed=5, chunk=15, stop=stop)
    _run(gate)
    assert len(gate.values) == 30


def test_a_recorded_decision_evaluates_exactly_the_instances_it_names() -> None:
    live = InstanceWise(seed=1, chunk=8, stop=lambda v: "wilcoxon" if len(v) >= 16 else None)
    _run(live)
    replay = InstanceWise(seed=1, chunk=8, stop=recorded_eval_stop({"instances": len(live.values), "by": "wilcoxon"}))
    assert _run(replay) == [i for i, _ in live.values] and replay.stopped_by == "wilcoxon"
    text = instances_jsonl(live.values)
    assert instance_values(text) == dict(live.values) and text.count("\n") == 16


@pytest.fixture
def campaign(tmp_path: Path) -> tuple[CampaignPaths, Any, Pruners]:
    """A campaign with `eval.pruner` whose study holds one complete trial, t000 (score 0.5), whose instances.jsonl
    says it answered the even instances right; and t001 recorded, running. With the pruners a worker running its
    trials hands their stages (the study opened once, by them)."""
    raw = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())
    raw["eval"]["pruner"] = {"name": "wilcoxon", "chunk": 8, "p_threshold": 0.1}
    paths = CampaignPaths("c", tmp_path)
    paths.dir.mkdir(parents=True)
    paths.params.write_text(yaml.safe_dump(raw))
    params = load_params(paths.params)
    study = open_study(paths, params)
    best = study.ask()
    best.set_user_attr("trial_id", "t000")
    study.tell(best, 0.5)
    paths.trial("t000").dir.mkdir(parents=True)
    paths.trial("t000").instances.write_text(instances_jsonl([(i, float(i[1] % 2 == 0)) for i in INSTANCES]))
    running = study.ask()
    running.set_user_attr("trial_id", "t001")
    paths.trial("t001").dir.mkdir(parents=True)
    record = {"params": {"learning_rate": 0.01}, "seeds": {"train": 1, "eval": 2}}
    paths.trial("t001").decision.write_text(yaml.safe_dump({"t001": record}))
    yield paths, params, Pruners(paths, params, Studies())
    shutil.rmtree(paths.dir)


def test_wilcoxon_stops_a_worse_trial_and_records_where(campaign: tuple[CampaignPaths, Any, Pruners]) -> None:
    paths, params, pruners = campaign
    gate = eval_stop_for(params, "t001", read_trial(paths, "t001"), pruners)  # a worker's live run
    assert gate is not None and isinstance(gate.stop, AskEvalPruner)
    _run(gate, 0.0)  # wrong wherever the best was right: worse on the same instances
    decision = read_trial(paths, "t001")["eval_pruned"]
    assert gate.stopped_by is not None and gate.stopped_by.startswith("eval.pruner wilcoxon (p_threshold=0.1")
    assert "worse than t000" in gate.stopped_by and decision == {"instances": len(gate.values), "by": gate.stopped_by}
    assert len(gate.values) % 8 == 0 and len(gate.values) < 40  # after a chunk, before the end
    # without pruners (dvc repro), the recorded decision is followed, without the study
    rebuilt = eval_stop_for(params, "t001", read_trial(paths, "t001"), None)
    assert rebuilt is not None
    _run(rebuilt, 0.0)
    assert rebuilt.values == gate.values and rebuilt.stopped_by == gate.stopped_by


def test_wilcoxon_lets_an_equal_or_better_trial_finish(campaign: tuple[CampaignPaths, Any, Pruners]) -> None:
    paths, params, pruners = campaign
    for value in (lambda i: float(i[1] % 2 == 0), 1.0):
        gate = eval_stop_for(params, "t001", read_trial(paths, "t001"), pruners)
        assert gate is not None and isinstance(gate.stop, AskEvalPruner)
        _run(gate, value)
        assert gate.stopped_by is None and len(gate.values) == 40
    assert "eval_pruned" not in read_trial(paths, "t001")
    # given pruners, the baseline and the untuned reference are never pruned, nor a campaign without eval.pruner
    # evaluated in chunks
    for reference in ("baseline", "untuned"):
        gate = eval_stop_for(params, reference, {}, pruners)
        assert gate is not None and gate.stop is never
    plain = params.model_copy(update={"eval": params.eval.model_copy(update={"pruner": None})})
    assert eval_stop_for(plain, "t001", {}, pruners) is None
    # without pruners (dvc repro) a study trial is not asked either
    rebuilt = eval_stop_for(params, "t001", {}, None)
    assert rebuilt is not None and rebuilt.stop is never


def test_no_complete_trial_yet_no_pruning(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())
    raw["eval"]["pruner"] = {"name": "wilcoxon", "chunk": 4}
    paths = CampaignPaths("c", tmp_path)
    paths.dir.mkdir(parents=True)
    paths.params.write_text(yaml.safe_dump(raw))
    params = load_params(paths.params)
    open_study(paths, params).ask()
    gate = InstanceWise(seed=1, chunk=4, stop=AskEvalPruner(Pruners(paths, params, Studies()), "t000"))
    _run(gate, 0.0)
    assert gate.stopped_by is None and len(gate.values) == 40
    assert optuna.__version__  # (the pruner is Optuna's own)
