"""A campaign interrupted — its process group killed by a scheduler, or one of its Dask workers killed — resumes to
the record an uninterrupted run leaves: nothing completed is lost or run again, an interrupted trial runs again
(recorded as interrupted, never as failed), and trials.csv is byte-identical.

The reference is the campaign run once, uninterrupted, as `campaign run` starts it by default (a temporary
Prefect server and a local Dask cluster of its own). Kills happen at events read from the logs, not after
sleeps: during prepare, during a trial's training, during a trial's scoring.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from distributed import Client

from hpo.config import load_params
from hpo.record.files import read_yaml
from hpo.record.layout import CampaignPaths
from hpo.record.study import open_study

from .helpers import declare, dvc_out, env, make_workspace, run_ok, stage_runs, start, wait_for

pytestmark = pytest.mark.slow(weight=8)

NAME = "itr"
CAMPAIGN = {"n_trials": 2, "n_init": 2, "sampler": "tpe", "baseline": True}
WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}  # as the README tells users of `dask worker`
STEP = re.compile(r"iter \d+ step \d+")  # litgpt's line for a training step


def _workspace(root: Path, tiny_base: Path, **campaign: object) -> Path:
    ws = make_workspace(root / "ws", base_model=tiny_base)
    declare(ws, NAME, campaign={**CAMPAIGN, **campaign})
    return ws


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    ws = _workspace(tmp_path_factory.mktemp("reference"), tiny_base)
    run_ok(ws, "run", "--params", f"{NAME}.yaml")
    return ws


def _log(ws: Path, name: str) -> str:
    path = ws / "campaigns" / NAME / "logs" / name
    return path.read_text() if path.is_file() else ""


def _kill_group_when(ws: Path, event: str, happened) -> None:  # noqa: ANN001
    """Starts the campaign, SIGKILLs its whole process group (as a batch scheduler does) once `happened()`."""
    proc = start(ws, "run", "--params", f"{NAME}.yaml")
    try:
        wait_for(lambda: happened() or proc.poll() is not None, 600, event)
        assert proc.poll() is None, f"the campaign ended before {event}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_sigkill_at_three_moments_then_resume_gives_the_same_campaign(
    reference: Path, tmp_path: Path, tiny_base: Path
) -> None:
    ws = _workspace(tmp_path, tiny_base)
    moments = {
        "prepare": lambda: "Running stage 'design@" in _log(ws, "prepare.log"),
        "t000 training": lambda: len(STEP.findall(_log(ws, "t000.log"))) >= 3,
        "t001 scoring": lambda: f"Running stage 'score@{NAME}-t001'" in _log(ws, "t001.log"),
    }
    for event, happened in moments.items():
        _kill_group_when(ws, event, happened)
    run_ok(ws, "run", "--params", f"{NAME}.yaml")
    reference_csv = (reference / f"campaigns/{NAME}/report/trials.csv").read_text()
    assert (ws / f"campaigns/{NAME}/report/trials.csv").read_text() == reference_csv
    paths = CampaignPaths(NAME, ws)
    study = open_study(paths, load_params(paths.params))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2, "interrupted trials are not failures of their config"
    runs = stage_runs(ws, NAME)
    assert runs == {"t000": 2, "t001": 2}, "each interrupted trial ran again, whole; nothing else did"
    assert f"Running stage 'score@{NAME}-t001'" in _log(ws, "t001.log")
    assert "Data and pipelines are up to date." in dvc_out(ws, "status")


def test_worker_killed_mid_trial_is_interrupted_and_rerun_elsewhere(
    reference: Path, tmp_path: Path, tiny_base: Path
) -> None:
    """Trials on a real Dask scheduler with two worker processes on 127.0.0.1 (`dask scheduler`, 2 × `dask
    worker`): the worker SIGKILLed in the middle of a trial loses only that attempt; Dask runs the task again on the
    other worker."""
    # every port is chosen by the process that binds it (no free-port guess that another process can take first)
    scheduler_file = tmp_path / "scheduler.json"
    logs = (tmp_path / "dask.log").open("w")
    engine = {"cwd": tmp_path, "env": {**env(tmp_path), **WORKER_ENV}, "stdout": logs, "stderr": subprocess.STDOUT}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
        + ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
        **engine,
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file)]
            + ["--name", f"w{i}", "--no-nanny", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
            **engine,
        )
        for i in range(2)
    ]
    try:
        wait_for(scheduler_file.is_file, 60, "the scheduler's address")
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            procs = {address: workers[int(w["name"][1:])] for address, w in client.scheduler_info()["workers"].items()}
            address = client.scheduler.address
        ws = _workspace(tmp_path / "killed", tiny_base, scheduler=address)
        run = start(ws, "run", "--params", f"{NAME}.yaml")
        paths = CampaignPaths(NAME, ws)
        attempts = paths.dir / "logs" / "t000.attempts"
        wait_for(lambda: len(STEP.findall(_log(ws, "t000.log"))) >= 2, 900, "t000 to train")
        victim = attempts.read_text().split()[1]
        procs[victim].send_signal(signal.SIGKILL)
        out, _ = run.communicate(timeout=1200)
        assert run.returncode == 0, out[-4000:]
    finally:
        for proc in [*workers, scheduler]:
            proc.kill()
            proc.wait()
        logs.close()

    starts = [line.split() for line in attempts.read_text().splitlines()]
    assert len(starts) == 2 and starts[0][0] == starts[1][0], "the same submission, run twice"
    assert starts[0][1] == victim and starts[1][1] != victim, "the second attempt ran on the other worker"
    lineage = read_yaml(paths.lineage, {})
    assert lineage["t000"]["interrupted"] == 1 and lineage["t000"]["ran_on"] == starts[1][1]
    assert read_yaml(paths.failures, {}) == {}
    assert json.loads(paths.trial("t000").metrics.read_text())["state"] == "complete"
    expected = (reference / f"campaigns/{NAME}/report/trials.csv").read_text()
    assert (paths.report / "trials.csv").read_text() == expected
    assert "Data and pipelines are up to date." in dvc_out(ws, "status")
