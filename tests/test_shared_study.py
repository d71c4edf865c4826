"""Two `campaign run` processes on one campaign, sharing its study in PostgreSQL (Optuna's RDBStorage with
heartbeats): every trial runs exactly once. A real server is started on 127.0.0.1 by the test; without the
PostgreSQL binaries the same test runs on the journal-file study."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from hpo.config import load_params
from hpo.layout import CampaignPaths
from hpo.search.study import open_study

from .helpers import declare, dvc_out, make_workspace, stage_runs, start

pytestmark = pytest.mark.slow(weight=3)


def _pg_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    return Path(found).parent if found else None


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[str | None]:
    """A PostgreSQL URL on a server started for the test (None: no PostgreSQL here, use the journal file)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        yield None
        return
    # Its own folder under /tmp: the server's user must reach it, and pytest's folders are private to root.
    data = Path(tempfile.mkdtemp(prefix="campaign-pg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # PostgreSQL refuses to run as root: run it as the `postgres` user when the test runs as root.
    as_user = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    subprocess.run([*as_user, f"{bin_dir}/initdb -D {data} -A trust -U postgres >/dev/null"], check=True)
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, f"{bin_dir}/pg_ctl -D {data} -o '{opts}' -l {data}/log -w start >/dev/null"], check=True)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, f"{bin_dir}/pg_ctl -D {data} -m immediate stop >/dev/null"], check=False)
        shutil.rmtree(data, ignore_errors=True)


def test_two_processes_share_one_campaign(tmp_path: Path, storage: str | None, tiny_base: Path) -> None:
    ws = make_workspace(tmp_path / "ws", base_model=tiny_base)
    extra = {"storage": storage} if storage else {}
    for name, workers in (("two", 2), ("one", 1)):
        declare(ws, "e2e", campaign={"workers": workers, **extra}).rename(ws / f"{name}.yaml")
    first, second = start(ws, "run", "--params", "two.yaml"), start(ws, "run", "--params", "one.yaml")
    try:
        outputs = [p.communicate(timeout=1500)[0] for p in (first, second)]
    finally:
        for p in (first, second):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert first.returncode == 0 and second.returncode == 0, outputs[0][-2000:] + outputs[1][-2000:]
    params = load_params(ws / "two.yaml")
    paths = CampaignPaths("e2e", ws)
    study = open_study(paths, params)
    if storage:
        backend = getattr(study._storage, "_backend", study._storage)  # Optuna caches RDB storages
        assert isinstance(backend, optuna.storages.RDBStorage) and not paths.journal.exists()
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2, "both processes ran trials"
    assert stage_runs(ws, "e2e") == {"t000": 1, "t001": 1, "t002": 1, "t003": 1}
    assert paths.trial("baseline").metrics.is_file()
    assert "Data and pipelines are up to date." in dvc_out(ws, "status")
