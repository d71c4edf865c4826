"""Trials on a real Dask scheduler with two worker processes on 127.0.0.1 (`dask scheduler`, 2 × `dask worker`).

A worker SIGKILLed in the middle of a trial loses only that attempt: Dask runs the task again on the other
worker, the trial is recorded as interrupted (not failed), and the campaign's trials equal those of the same
campaign run uninterrupted on the default local cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from distributed import Client

from hpo.record.files import read_yaml
from hpo.record.layout import CampaignPaths

from .conftest import make_workspace

pytestmark = pytest.mark.slow

# as the README tells users of `dask worker` (Dask's profiler slows trials down: see flows/campaign.py)
WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
CAMPAIGN = {"name": "dask", "seed": 7, "n_trials": 2, "n_init": 2, "sampler": "tpe", "baseline": True}


def _workspace(root: Path, **campaign: object) -> Path:
    ws = make_workspace(root / "ws")
    params = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    params["campaign"] = {**CAMPAIGN, **campaign}
    (ws / "params.dask.yaml").write_text(yaml.safe_dump(params))
    return ws


def _env(ws: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_HOME": str(ws / ".prefect"), "PYTHONUNBUFFERED": "1"}


def _run(ws: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--params", "params.dask.yaml"],
        cwd=ws,
        env=_env(ws),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(predicate, timeout: float, what: str):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_mid_trial_is_interrupted_and_rerun_elsewhere(tmp_path: Path) -> None:
    reference = _workspace(tmp_path / "reference")
    done = _run(reference)
    out, _ = done.communicate(timeout=1200)
    assert done.returncode == 0, out[-4000:]

    # every port is chosen by the process that binds it (no free-port guess that another process can take first)
    scheduler_file = tmp_path / "scheduler.json"
    logs = (tmp_path / "dask.log").open("w")
    engine = {"cwd": tmp_path, "env": {**_env(tmp_path), **WORKER_ENV}, "stdout": logs, "stderr": subprocess.STDOUT}
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
        _wait_for(scheduler_file.is_file, 60, "the scheduler's address")
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            procs = {address: workers[int(w["name"][1:])] for address, w in client.scheduler_info()["workers"].items()}
            address = client.scheduler.address
        ws = _workspace(tmp_path / "killed", scheduler=address)
        run = _run(ws)
        paths = CampaignPaths("dask", ws)
        attempts = paths.dir / "logs" / "t000.attempts"
        log = paths.dir / "logs" / "t000.log"
        _wait_for(lambda: log.is_file() and "Running stage 'train_lora@" in log.read_text(), 900, "t000 to train")
        time.sleep(1.0)
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
    expected = (reference / "campaigns/dask/report/trials.csv").read_text()
    assert (paths.report / "trials.csv").read_text() == expected
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=ws, capture_output=True, text=True, env=_env(ws)
    )
    assert "Data and pipelines are up to date." in status.stdout, status.stdout + status.stderr
