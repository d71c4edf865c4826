"""Failing trials are recorded with their reason; `max_failures` stops the campaign with a clear message."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hpo.config import load_params
from hpo.layout import CampaignPaths
from hpo.search.study import open_study

from .helpers import Engines, campaign, declare, make_workspace

pytestmark = pytest.mark.slow


def test_diverging_trials_fail_and_max_failures_stops_the_campaign(
    tmp_path: Path, tiny_base: Path, engines: Engines
) -> None:
    ws = make_workspace(tmp_path / "ws", base_model=tiny_base)
    declare(
        ws,
        "boom",
        campaign={"n_trials": 3, "n_init": 0, "baseline": False, "max_failures": 0, "scheduler": engines.scheduler},
        space={"learning_rate": {"type": "float", "low": 1.0e10, "high": 1.0e12, "log": True}},
    )
    done = campaign(ws, "run", "--params", "boom.yaml", extra_env=engines.env)
    assert done.returncode == 2
    assert "campaign.max_failures: 1 trials failed, more than the 0 allowed" in done.stderr
    paths = CampaignPaths("boom", ws)
    study = open_study(paths, load_params(paths.params))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]
    assert study.trials[0].user_attrs["fail_reason"].startswith("diverged: non-finite loss at iteration")
    table = (paths.report / "trials.csv").read_text()
    assert "t000,False,failed," in table and "diverged" in table


def test_bad_params_stop_before_anything_is_written(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    bad = ws / "bad.yaml"
    bad.write_text((ws / "tests/params.e2e.yaml").read_text().replace("n_init: 2", "n_init: 9"))
    done = campaign(ws, "run", "--params", "bad.yaml")
    assert done.returncode == 2
    assert "campaign: n_init (9) must be <= n_trials (4)" in done.stderr
    assert sorted(p.name for p in (ws / "campaigns").iterdir()) == ["registry.yaml"]
