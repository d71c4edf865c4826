"""End to end: a small campaign (baseline + 2 design + 2 TPE trials) through the Prefect flow and DVC, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from stages.config import load_params
from stages.layout import CampaignPaths
from stages.study import open_study

from .conftest import make_workspace

pytestmark = pytest.mark.slow


def _campaign(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(ws / ".prefect")}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=ws, env=env, capture_output=True, text=True, timeout=1200
    )


def _dvc(ws: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, capture_output=True, text=True, check=True)
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    runs = []
    for name in ("first", "second"):
        ws = make_workspace(tmp_path_factory.mktemp(name) / "ws")
        done = _campaign(ws, "run", "--params", "tests/params.e2e.yaml")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs.append(ws)
    return runs


def test_campaign_records_every_trial(campaigns: list[Path]) -> None:
    ws = campaigns[0]
    paths = CampaignPaths("e2e", ws)
    for trial in ("baseline", "t000", "t001", "t002", "t003"):
        out = paths.trial(trial)
        assert (out.adapter / "lit_model.pth.lora").is_file()
        assert (out.merged / "lit_model.pth").is_file()
        metrics = json.loads(out.metrics.read_text())
        assert metrics["state"] == "complete" and 0.0 <= metrics["score"] <= 1.0
        assert json.loads(out.train_metrics.read_text())["tokens"] > 0
    study = open_study(paths, load_params(paths.params))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.number for t in complete] == [0, 1, 2, 3]
    design = json.loads(paths.design.read_text())
    assert [t.params for t in complete[:2]] == design, "design points run first"
    assert complete[0].user_attrs["trial_id"] == "t000" and "data_hash" in complete[0].user_attrs
    best = json.loads((paths.report / "best.json").read_text())
    assert best["best"]["trial"] in {"t000", "t001", "t002", "t003"} and best["baseline_score"] is not None
    assert (paths.report / "history.png").stat().st_size > 1000


def test_dvc_is_clean_and_repro_is_a_no_op(campaigns: list[Path]) -> None:
    ws = campaigns[0]
    assert "Data and pipelines are up to date." in _dvc(ws, "status")
    out = _dvc(ws, "repro")
    assert "Running stage" not in out
    metrics = _dvc(ws, "metrics", "show")
    assert "campaigns/e2e/trials/t003/metrics.json" in metrics


def test_same_seed_from_scratch_gives_identical_trials_csv(campaigns: list[Path]) -> None:
    first, second = (ws / "campaigns/e2e/report/trials.csv" for ws in campaigns)
    assert first.read_text() == second.read_text()


def test_rerun_resumes_without_rerunning(campaigns: list[Path]) -> None:
    ws = campaigns[0]
    before = (ws / "campaigns/e2e/trials/t000/train.json").read_text()
    done = _campaign(ws, "run", "--params", "tests/params.e2e.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train_lora" not in done.stdout, "no stage runs again"
    assert (ws / "campaigns/e2e/trials/t000/train.json").read_text() == before


def test_bad_params_stop_before_anything_is_written(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    bad = ws / "bad.yaml"
    bad.write_text((ws / "tests/params.e2e.yaml").read_text().replace("n_init: 2", "n_init: 9"))
    done = _campaign(ws, "run", "--params", "bad.yaml")
    assert done.returncode == 2
    assert "campaign: n_init (9) must be <= n_trials (4)" in done.stderr
    assert sorted(p.name for p in (ws / "campaigns").iterdir()) == ["registry.yaml"]
