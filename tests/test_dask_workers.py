"""Trials on a real Dask scheduler with two worker processes on 127.0.0.1 (`dask scheduler`, 2 × `dask worker`).

A worker SIGKILLed in the middle of a trial loses only that attempt: Dask runs the task again on the other
worker, the trial is recorded as interrupted (not failed), and the campaign's trials equal those of the same
campaign run uninterrupted on the default local cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpo.record.files import read_yaml
from hpo.record.layout import CampaignPaths

from .conftest import make_workspace

pytestmark = pytest.mark.slow

CAMPAIGN = {"name": "dask", "seed": 7, "n_trials": 2, "n_init": 2, "sampler": "tpe", "baseline": True}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    port = _free_port()
    ws = _workspace(tmp_path / "killed", scheduler=f"tcp://127.0.0.1:{port}")
    procs: dict[str, subprocess.Popen] = {}
    logs = (tmp_path / "dask.log").open("w")
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            "127.0.0.1:0",
        ],
        cwd=ws,
        env=_env(ws),
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(2):
            worker_port = _free_port()
            address = f"tcp://127.0.0.1:{worker_port}"
            procs[address] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    f"tcp://127.0.0.1:{port}",
                    "--no-nanny",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--worker-port",
                    str(worker_port),
                    "--no-dashboard",
                ],
                cwd=ws,
                env=_env(ws),
                stdout=logs,
                stderr=subprocess.STDOUT,
            )
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
        for proc in [*procs.values(), scheduler]:
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
