"""End to end: a small campaign (baseline + 2 design + 2 TPE trials) through the Prefect flow and DVC, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from hpo.config import load_params
from hpo.record.layout import CampaignPaths
from hpo.record.study import open_study

from .conftest import make_workspace

pytestmark = pytest.mark.slow


def _campaign(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(ws / ".prefect")}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=ws, env=env, capture_output=True, text=True, timeout=1200
    )


def _dvc(ws: Path, *args: str) -> str:
    # As a user with the venv activated: stage commands say `python`.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, capture_output=True, text=True, env=env)
    assert out.returncode == 0, f"dvc {' '.join(args)} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    runs = []
    # One uninterrupted campaign; test_sigkill_… runs the same campaign again from scratch (killed and resumed on
    # the way) and compares its trials.csv with this one's.
    for name in ("first",):
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


def _git(ws: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=ws, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_dvc_repro_on_a_clean_clone_rebuilds_the_record_unchanged(campaigns: list[Path], tmp_path: Path) -> None:
    """The campaign's record is committed to git as a user would (decisions, dvc.lock, lineage, the small metrics
    and report files; artefacts stay out of git). In a git clone with an empty DVC cache, `dvc repro -f` rebuilds
    every stage, and afterwards `git status` shows nothing changed: metrics, losses, the report and dvc.lock (so
    every weight file's hash) are byte-identical, and no wall time leaks into a versioned file."""
    source = campaigns[0]
    _git(source, "add", "-A")
    _git(source, "commit", "-qm", "campaign record")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(source), str(clone))
    assert not (clone / "campaigns/e2e/trials/t000/adapter").exists() and not (clone / ".dvc/cache").exists()
    assert (clone / "campaigns/e2e/trials/t003/metrics.json").is_file()
    out = _dvc(clone, "repro", "-f")
    assert "Running stage 'train_lora@e2e-t003'" in out and "Running stage 'base_model@e2e'" in out
    assert _git(clone, "status", "--porcelain") == "", _git(clone, "diff", "--stat")
    assert "Data and pipelines are up to date." in _dvc(clone, "status")


def test_dvc_metrics_params_and_plots_commands(campaigns: list[Path]) -> None:
    ws = campaigns[0]
    shown = _dvc(ws, "metrics", "show", "--json")
    metrics = json.loads(shown)
    files = next(iter(metrics.values()))["data"]
    assert files["campaigns/e2e/trials/t001/metrics.json"]["data"]["state"] == "complete"
    assert "campaigns/e2e/trials/t001/loss.csv" in _dvc(ws, "plots", "show", "--json")
    assert "campaigns/e2e/params.yaml" in _dvc(ws, "params", "diff", "--all")
    # The README's readable experiments table: only each trial's score and state, no cell cut to "…".
    table = _dvc(ws, "exp", "show", "--md", "--drop", ".*", "--keep", r"Experiment|.*/metrics\.json:(score|state)$")
    header = next(line for line in table.splitlines() if line.startswith("|"))
    n_trials = len(list(ws.glob("campaigns/*/trials/*/metrics.json")))
    assert header.count("|") - 1 == 1 + 2 * n_trials and "…" not in table
    assert "campaigns/e2e/trials/t001/metrics.json:score" in header


def test_trace_prints_lineage_and_finds_a_changed_artefact(campaigns: list[Path]) -> None:
    ws = campaigns[0]
    done = _campaign(ws, "trace", "e2e", "t001")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert record["params"] and record["seeds"]["train"] and record["code"]["commit"]
    assert record["hashes"]["adapter"]["md5"].endswith(".dir") and record["libraries"]["litgpt"] == "0.5.13"
    assert record["evaluation"]["padding_side"] == "right" and record["training"]["tokens_seen"] > 0
    merged = ws / "campaigns/e2e/trials/t001/merged/lit_model.pth"
    original = merged.read_bytes()
    try:
        merged.write_bytes(original[:-8] + b"\0" * 8)
        done = _campaign(ws, "trace", "e2e", "t001")
        assert done.returncode == 2
        assert "t001: merged modified" in done.stderr
    finally:
        merged.write_bytes(original)


def test_compare_and_warm_start(campaigns: list[Path]) -> None:
    ws = campaigns[0]
    params = (ws / "tests/params.e2e.yaml").read_text()
    warm = params.replace("name: e2e,", "name: e2e_warm,").replace("n_trials: 4, n_init: 2", "n_trials: 1, n_init: 0")
    warm = warm.replace("baseline: true}", "baseline: false, warm_start: {campaigns: [e2e]}}")
    (ws / "warm.yaml").write_text(warm)
    done = _campaign(ws, "run", "--params", "warm.yaml")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "warm start: 4 prior observations added, 0 outside the space skipped" in done.stdout
    paths = CampaignPaths("e2e_warm", ws)
    study = open_study(paths, load_params(paths.params))
    priors = [t for t in study.trials if "warm_start_from" in t.user_attrs]
    assert sorted(t.user_attrs["warm_start_from"] for t in priors) == [f"e2e/t00{i}" for i in range(4)]
    assert all(t.user_attrs["data_hash"] for t in priors)
    table = (paths.report / "trials.csv").read_text()
    assert table.count(",prior,") == 4 and "e2e/t003" in table
    assert "Data and pipelines are up to date." in _dvc(ws, "status")

    done = _campaign(ws, "compare", "e2e", "e2e_warm", "--html", "cmp.html")
    assert done.returncode == 0, done.stderr
    assert "campaign.warm_start.campaigns" in done.stdout and "campaign.n_trials" in done.stdout
    assert (ws / "cmp.html").stat().st_size > 100_000


def _start(ws: Path, params: str) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_HOME": str(ws / ".prefect")}
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--params", params],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _stage_runs(ws: Path, campaign: str = "e2e") -> dict[str, int]:
    """How many times DVC started each trial's train_lora, from the trials' logs."""
    runs: dict[str, int] = {}
    for log in sorted((ws / "campaigns" / campaign / "logs").glob("t*.log")):
        runs[log.stem] = log.read_text().count(f"Running stage 'train_lora@{campaign}-{log.stem}'")
    return runs


def test_sigkill_at_random_points_then_resume_gives_the_same_campaign(campaigns: list[Path], tmp_path: Path) -> None:
    """Run the campaign again from scratch with the same seed, killing it (its whole process group, as a scheduler
    does) at random moments and running it again each time: nothing completed is lost or re-run, the interrupted
    trial runs again, and the final trials.csv is byte-identical to the uninterrupted run's."""
    import random
    import signal
    import time

    ws = make_workspace(tmp_path / "ws")
    rng = random.Random(2026)
    kills = 0
    for _ in range(2):
        proc = _start(ws, "tests/params.e2e.yaml")
        time.sleep(rng.uniform(30, 90))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    done = _campaign(ws, "run", "--params", "tests/params.e2e.yaml")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert kills >= 1
    reference = campaigns[0] / "campaigns/e2e/report/trials.csv"
    assert (ws / "campaigns/e2e/report/trials.csv").read_text() == reference.read_text()
    paths = CampaignPaths("e2e", ws)
    study = open_study(paths, load_params(paths.params))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4, "interrupted trials are not failures of their config"
    runs = _stage_runs(ws)
    assert set(runs) == {"t000", "t001", "t002", "t003"}
    assert all(1 <= n <= 2 for n in runs.values()) and sum(runs.values()) <= 4 + kills, runs
    assert "Data and pipelines are up to date." in _dvc(ws, "status")
