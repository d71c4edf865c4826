"""The study's crash handling: torn journal records, trials of dead workers, per-trial sampler seeds."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna

from hpo.config import load_params
from hpo.layout import CampaignPaths
from hpo.search.proposers import ask
from hpo.search.study import WORKER, claim, open_study, orphaned, repair_journal

from .helpers import ROOT


def _study(tmp_path: Path) -> tuple[optuna.Study, CampaignPaths]:
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    paths = CampaignPaths("s", tmp_path)
    return open_study(paths, params), paths


def test_torn_last_record_is_cut_and_nothing_else_is_lost(tmp_path: Path) -> None:
    study, paths = _study(tmp_path)
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    for value in (0.1, 0.2):
        trial = ask(study, params)
        study.tell(trial, value)
    intact = paths.journal.read_bytes()
    with paths.journal.open("ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 2, "par')  # a write cut short by a crash
    assert repair_journal(paths.journal) > 0
    assert paths.journal.read_bytes() == intact
    reopened, _ = _study(tmp_path)
    assert [t.value for t in reopened.trials] == [0.1, 0.2]
    trial = ask(reopened, params)  # and the journal takes new records again
    reopened.tell(trial, 0.3)
    assert [t.value for t in _study(tmp_path)[0].trials] == [0.1, 0.2, 0.3]
    assert repair_journal(paths.journal) == 0


def test_orphaned_trials_are_those_of_dead_workers_on_this_host(tmp_path: Path) -> None:
    study, _ = _study(tmp_path)
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    mine, dead, remote, unknown = (ask(study, params) for _ in range(4))
    claim(mine)
    dead.set_user_attr(WORKER, f"{socket.gethostname()}:{2**22 + 12345}")
    remote.set_user_attr(WORKER, "another-host:1")
    found = {t.number for t in orphaned(study)}
    assert found == {dead.number, unknown.number}
    assert mine.user_attrs[WORKER].endswith(f":{os.getpid()}")


def test_resumed_proposals_equal_uninterrupted_ones(tmp_path: Path) -> None:
    """A sampler re-created in a new process (here: a reopened study) proposes what the first one would have."""
    params = load_params(ROOT / "tests" / "params.e2e.yaml")

    def run(path: Path, stop_after: int | None) -> list[dict]:
        study, _ = _study(path)
        seen = []
        for i in range(6):
            if stop_after is not None and i == stop_after:
                study, _ = _study(path)  # as after a crash: a new study object, a new sampler
            trial = ask(study, params)
            seen.append(dict(trial.params))
            study.tell(trial, -abs(trial.params["learning_rate"] - 0.01))
        return seen

    assert run(tmp_path / "a", None) == run(tmp_path / "b", 3)
