"""Pruning of training trials (`campaign.pruner`) as a stage sees it: the pruners are an argument a warm worker
passes, the live decision is reported to the campaign's study and recorded before the stage goes on, a recorded
decision is replayed without a study, and the baseline is never asked. And the worker's studies: each campaign's
opened once per worker, kept by the worker's plugin."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.config import load_params
from hpo.layout import CampaignPaths
from hpo.record.records import read_trial
from hpo.search.study import open_study
from hpo.search.training_pruning import describe, intermediate_value
from hpo.trials.pruners import AskPruner, Pruners, Studies, stop_for
from hpo.trials.worker import WarmUp, worker_studies

from .helpers import ROOT


@pytest.fixture
def campaign(tmp_path: Path) -> Iterator[tuple[CampaignPaths, Any, Pruners]]:
    """A campaign with `campaign.pruner: median` whose study holds one complete trial, t000, which reported a
    validation loss of 0.1 at step 2; and t001 recorded, running. With the pruners a worker hands t001's stages."""
    raw = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())
    raw["campaign"]["pruner"] = {"name": "median", "n_startup_trials": 1}
    paths = CampaignPaths("c", tmp_path)
    paths.dir.mkdir(parents=True)
    paths.params.write_text(yaml.safe_dump(raw))
    params = load_params(paths.params)
    study = open_study(paths, params)
    done = study.ask()
    done.report(intermediate_value(0.1, params.eval.direction), 2)
    study.tell(done, 0.5)
    study.ask()  # t001, running
    paths.trial("t001").dir.mkdir(parents=True)
    record = {"params": {"learning_rate": 0.01}, "seeds": {"train": 1, "eval": 2}}
    paths.trial("t001").decision.write_text(yaml.safe_dump({"t001": record}))
    yield paths, params, Pruners(paths, params, Studies())
    shutil.rmtree(paths.dir)


def test_a_study_trial_asks_only_when_given_pruners(campaign: tuple[CampaignPaths, Any, Pruners]) -> None:
    paths, params, pruners = campaign
    record = read_trial(paths, "t001")
    assert isinstance(stop_for(params, "t001", record, pruners), AskPruner)  # a worker's live run
    assert stop_for(params, "t001", record, None) is None  # dvc repro, python -m stages.train_lora: never asked
    assert stop_for(params, "baseline", {}, pruners) is None  # the baseline is never pruned
    plain = params.model_copy(update={"campaign": params.campaign.model_copy(update={"pruner": None})})
    assert stop_for(plain, "t001", record, pruners) is None  # no campaign.pruner, nothing to ask


def test_the_live_decision_is_reported_recorded_and_replayed(campaign: tuple[CampaignPaths, Any, Pruners]) -> None:
    paths, params, pruners = campaign
    stop = stop_for(params, "t001", read_trial(paths, "t001"), pruners)
    assert stop is not None
    assert stop(2, 5.0) == describe(params)  # far worse than t000 at the same step: the median pruner stops it
    assert read_trial(paths, "t001")["pruned"] == {"step": 2, "by": describe(params)}, "recorded before it returns"
    reported = open_study(paths, params).trials[1].intermediate_values
    assert reported == {2: intermediate_value(5.0, params.eval.direction)}
    # the recorded decision comes first, with or without pruners, and asks no study
    for given in (pruners, None):
        replay = stop_for(params, "t001", read_trial(paths, "t001"), given)
        assert replay is not None and not isinstance(replay, AskPruner)
        assert [replay(step, 0.0) for step in (1, 2, 3)] == [None, describe(params), describe(params)]


def test_a_worker_opens_a_campaigns_study_once(campaign: tuple[CampaignPaths, Any, Pruners]) -> None:
    paths, params, pruners = campaign
    assert pruners.study() is pruners.study() is pruners.studies.open(paths, params)
    assert Pruners(paths, params, pruners.studies).study() is pruners.study(), "the next trial's pruners too"
    # the warm-up plugin holds the worker's studies; Dask pickles it on its way to each worker: none opened there
    plugin = WarmUp({})
    plugin.studies.open(paths, params)
    arrived = pickle.loads(pickle.dumps(plugin))
    assert arrived.studies is not plugin.studies and arrived.studies.open(paths, params) is not pruners.study()
    # outside a Dask worker a caller gets studies of its own
    assert worker_studies() is not worker_studies()
