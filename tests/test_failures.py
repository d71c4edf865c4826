"""Failing trials are recorded with their reason; `max_failures` stops the campaign with a clear message."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from hpo.config import load_params
from hpo.record.layout import CampaignPaths
from hpo.record.study import open_study

from .conftest import make_workspace
from .test_e2e import _campaign

pytestmark = pytest.mark.slow


def test_diverging_trials_fail_and_max_failures_stops_the_campaign(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    raw = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update(name="boom", n_trials=3, n_init=0, baseline=False, max_failures=0)
    raw["space"]["learning_rate"] = {"type": "float", "low": 1.0e10, "high": 1.0e12, "log": True}
    (ws / "boom.yaml").write_text(yaml.safe_dump(raw))
    done = _campaign(ws, "run", "--params", "boom.yaml")
    assert done.returncode == 2
    assert "campaign.max_failures: 1 trials failed, more than the 0 allowed" in done.stderr
    paths = CampaignPaths("boom", ws)
    study = open_study(paths, load_params(paths.params))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]
    assert study.trials[0].user_attrs["fail_reason"].startswith("diverged: non-finite loss at iteration")
    table = (paths.report / "trials.csv").read_text()
    assert "t000,False,failed," in table and "diverged" in table
