"""Proposers: the same seed gives the same proposals, another seed other ones; design points come first."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hpo.config import Params, derive_seed, load_params
from hpo.layout import CampaignPaths
from hpo.search.design import latin_hypercube
from hpo.search.proposers import Search, ask, enqueue_design
from hpo.search.strategy import Strategy
from hpo.search.study import open_study

from .helpers import ROOT

SAMPLERS = ["tpe", "gp", "skopt", "random", "qmc"]


def _params(sampler: str, seed: int) -> Params:
    base = load_params(ROOT / "tests" / "params.e2e.yaml")
    campaign = base.campaign.model_copy(update={"sampler": sampler, "seed": seed, "n_init": 3, "n_trials": 7})
    return base.model_copy(update={"campaign": campaign})


def _objective(values: dict) -> float:
    # A smooth synthetic score with its optimum inside the space (no training needed to test the proposers).
    return -((math.log10(values["learning_rate"]) + 2.0) ** 2) - 0.1 * abs(values["lora_r"] - 8) / 8


def _run(tmp: Path, sampler: str, seed: int) -> tuple[list[dict], list[dict]]:
    params = _params(sampler, seed)
    paths = CampaignPaths(f"{sampler}{seed}", tmp)
    study = open_study(paths, params)
    points = latin_hypercube(params.space, params.campaign.n_init, derive_seed(seed, "design"))
    enqueue_design(study, points)
    proposals = []
    for _ in range(params.campaign.n_trials):
        trial = ask(study, params)
        proposals.append(dict(trial.params))
        study.tell(trial, _objective(trial.params))
    return proposals, points


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_proposals_other_seed_other(tmp_path: Path, sampler: str) -> None:
    first, points = _run(tmp_path / "a", sampler, seed=1)
    again, _ = _run(tmp_path / "b", sampler, seed=1)
    other, _ = _run(tmp_path / "c", sampler, seed=2)
    assert first == again
    assert first != other
    assert first[:3] == points, "design points are asked first"
    assert first[3:] != other[3:], "the proposer itself depends on the seed"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_strategy_outside_a_campaign_asks_what_a_campaign_asks(tmp_path: Path, sampler: str) -> None:
    """Plain ask/tell on an in-memory study (`Strategy`) is the campaign's search: same points, same order."""
    campaign, _ = _run(tmp_path, sampler, seed=5)
    params = _params(sampler, seed=5)
    strategy = Strategy(Search.of(params))
    values = strategy.optimize(_objective, params.campaign.n_trials)
    asked = [dict(t.params) for t in strategy.study.trials]
    assert asked == campaign
    assert values == [_objective(p) for p in campaign]


def test_design_is_enqueued_once(tmp_path: Path) -> None:
    params = _params("tpe", 1)
    paths = CampaignPaths("x", tmp_path)
    study = open_study(paths, params)
    points = latin_hypercube(params.space, 3, 1)
    assert enqueue_design(study, points) == 3
    reopened = open_study(paths, params)
    assert enqueue_design(reopened, points) == 0
    assert len(reopened.trials) == 3


@pytest.mark.parametrize("sampler", ["tpe", "gp", "random"])
def test_a_multi_objective_strategy_finds_the_pareto_front_the_report_computes(sampler: str) -> None:
    """Two objectives (maximise a score, minimise a cost) through the campaign's strategy with a constraint: the
    study's Pareto front (Optuna's, of the feasible trials) is the one `pareto_front` computes from a table."""
    import optuna
    import pandas as pd

    from hpo.config.space import FloatDimension
    from hpo.search.objectives import pareto_front

    space = {"x": FloatDimension(type="float", low=0.0, high=1.0), "y": FloatDimension(type="float", low=0.0, high=1.0)}
    search = Search(space, sampler=sampler, n_init=4, seed=3, objectives=("score", "cost"))
    strategy = Strategy(search)
    rows = []
    for i in range(16):
        trial = strategy.ask()
        x, y = trial.params["x"], trial.params["y"]
        score, cost = 1 - (x - 0.3) ** 2 - y, x + 0.5 * y  # more score costs more
        trial.set_constraint("cost", cost - 0.9)
        strategy.tell(trial, [score, cost])
        rows.append(
            {
                "trial": f"t{i:03d}",
                "baseline": False,
                "state": "complete",
                "score": score,
                "cost": cost,
                "feasible": cost <= 0.9,
            }
        )
    front = pareto_front(pd.DataFrame(rows), ["score", "cost"], "maximize")
    # Optuna's own front of a constrained study holds only feasible trials
    assert sorted(front) == sorted(f"t{t.number:03d}" for t in strategy.study.best_trials) and front
    assert strategy.study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
