"""A scheduled Prefect deployment of the campaign flow, on a real `prefect server` on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import declare, free_port, make_workspace, prefect_env, wait_healthy

pytestmark = pytest.mark.slow(weight=2)


def test_deployment_served_and_triggered_runs_the_campaign(tmp_path: Path, tiny_base: Path) -> None:
    ws = make_workspace(tmp_path / "ws", base_model=tiny_base)
    declare(ws, "e2e", campaign={"n_trials": 1, "n_init": 1, "baseline": False}).rename(ws / "nightly.yaml")
    api = f"http://127.0.0.1:{free_port()}/api"
    env = prefect_env(tmp_path / "prefect", api)
    port = api.rsplit(":", 1)[1].split("/")[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", port],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    served = None
    try:
        wait_healthy(api, 120)
        served = subprocess.Popen(
            [sys.executable, "-m", "flows.deploy", "--params", "nightly.yaml", "--cron", "0 3 * * *"],
            cwd=ws,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        trigger = (
            "import time\n"
            "from prefect.deployments import run_deployment\n"
            "for _ in range(60):\n"
            "    try:\n"
            "        run = run_deployment('campaign/e2e', timeout=900)\n"
            "        break\n"
            "    except Exception:\n"
            "        time.sleep(2)\n"
            "print('STATE', run.state.type.value)\n"
        )
        done = subprocess.run([sys.executable, "-c", trigger], env=env, capture_output=True, text=True, timeout=1000)
        assert "STATE COMPLETED" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
        inspect = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "inspect", "campaign/e2e"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "0 3 * * *" in inspect.stdout, inspect.stdout[-2000:]
        assert (ws / "campaigns/e2e/report/best.json").is_file()
        assert (ws / "campaigns/e2e/trials/t000/metrics.json").is_file()
    finally:
        for proc in (served, server):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
