"""Parse once: `campaign run` parses and validates its params file once and hands the frozen `Params` down (CLI →
flow → `Campaign`), a resumed run too; a stage process parses its campaign's recorded params once; the campaign's
proposer is built once per run and proposes what a proposer built for each question proposes.

A parse is counted where every validation of a declaration passes: `Params`' before-validator calls
`hpo.config.rules.space_names_fit_kind` (looked up on the module at each call), whichever entry point validates
(`load_params`, `Params.model_validate`, a nested pydantic field); a `model_copy` is not a parse."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpo.campaign import Campaign
from hpo.config import Params, ParamsError, derive_seed, load_params, rules
from hpo.files import read_yaml, write_yaml
from hpo.layout import CampaignPaths
from hpo.search.design import latin_hypercube
from hpo.search.proposers import Proposer, ask, enqueue_design
from hpo.search.study import open_study

from .helpers import ROOT, Engines, declare, env, make_workspace

# Runs `python -m <module> <args>` in this process with every validation of a declaration counted; the count (and
# where each came from) is written to the file PARSES names when the process ends, however it ends.
COUNTED = """
import atexit, json, os, runpy, sys, traceback
import hpo.config.rules as rules
seen, validate = [], rules.space_names_fit_kind
def counted(raw):
    seen.append([f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack()[-8:-1]])
    return validate(raw)
rules.space_names_fit_kind = counted
atexit.register(lambda: open(os.environ["PARSES"], "w").write(json.dumps(seen)))
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def counted(ws: Path, out: Path, module: str, *args: str, **extra: str) -> tuple[subprocess.CompletedProcess, list]:
    """`python -m <module> <args>` in `ws`, counting parses: the process and the stack of each parse."""
    done = subprocess.run(
        [sys.executable, "-c", COUNTED, module, *args],
        cwd=ws,
        env=env(ws, PARSES=str(out), **extra),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return done, json.loads(out.read_text()) if out.is_file() else []


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every validation of a declaration in this process from now on (where it came from)."""
    seen: list[str] = []
    validate = rules.space_names_fit_kind

    def count(raw: Any) -> Any:
        seen.append("".join(traceback.format_stack(limit=6)[:-1]))
        return validate(raw)

    monkeypatch.setattr(rules, "space_names_fit_kind", count)
    yield seen


def test_starting_a_campaign_with_its_parsed_params_parses_nothing_again(workspace: Path, parses: list[str]) -> None:
    """`Campaign.start` with the declaration the CLI parsed: no parse, neither when it records the campaign nor
    when it reopens it (the recorded file is compared as written); a setting changed since is still refused, and
    a recorded file that differs only by a setting added since (its default) still resumes, through the schema."""
    params_file = workspace / "params.yaml"
    params = load_params(params_file)
    assert len(parses) == 1
    first = Campaign.start(params_file, workspace, params=params)
    assert first.params == params
    again = Campaign.start(params_file, workspace, params=params)  # a resumed run
    operational = params.model_copy(update={"campaign": params.campaign.model_copy(update={"workers": 2})})
    Campaign.start(params_file, workspace, params=operational)  # how the run runs, not what the campaign is
    assert len(parses) == 1, "".join(parses[1:])
    assert again.params == params and again.paths == first.paths

    changed = params.model_copy(update={"campaign": params.campaign.model_copy(update={"n_trials": 99})})
    with pytest.raises(ParamsError, match="already exists with different settings"):
        Campaign.start(params_file, workspace, params=changed)

    recorded = read_yaml(first.paths.params, {})
    del recorded["train"]["lr_warmup_steps"]  # as if recorded before the setting existed: read as its default
    write_yaml(first.paths.params, recorded)
    Campaign.start(params_file, workspace, params=params)


def test_a_stage_process_parses_its_campaigns_params_once(
    workspace: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage's CLI (here the design stage's `main`, in this process) parses the recorded params once."""
    import stages.design

    Campaign.start(workspace / "params.yaml", workspace)
    parses.clear()
    monkeypatch.setattr(sys, "argv", ["design", "--campaign", "default"])
    stages.design.main()
    assert len(parses) == 1, "".join(parses)
    assert (workspace / "campaigns/default/design.json").is_file()


def _params(sampler: str) -> Params:
    base = load_params(ROOT / "tests" / "params.e2e.yaml")
    campaign = base.campaign.model_copy(update={"sampler": sampler, "seed": 11, "n_init": 2, "n_trials": 6})
    return base.model_copy(update={"campaign": campaign})


def _objective(values: dict) -> float:
    return -((math.log10(values["learning_rate"]) + 2.0) ** 2) - 0.1 * abs(values["lora_r"] - 8) / 8


@pytest.mark.parametrize("sampler", ["tpe", "gp", "skopt"])
def test_one_proposer_per_run_proposes_what_one_per_question_does_and_resumes_the_same(
    tmp_path: Path, sampler: str
) -> None:
    """The campaign's proposer, built once per run, asks what a proposer built for each question asks (the
    per-trial seeding stays: decisions depend on the seed and the history only), and a run resumed in a new
    process (a new proposer, a reopened study) asks what an uninterrupted one asks."""
    params = _params(sampler)
    points = latin_hypercube(params.space, params.campaign.n_init, derive_seed(params.campaign.seed, "design"))

    def run(name: str, once: bool, resume_at: int | None = None) -> list[dict]:
        paths = CampaignPaths(name, tmp_path)
        study = open_study(paths, params)
        enqueue_design(study, points)
        proposer, asked = Proposer(params), []
        for i in range(params.campaign.n_trials):
            if i == resume_at:
                study, proposer = open_study(paths, params), Proposer(params)
            trial = proposer.ask(study) if once else ask(study, params)
            asked.append(dict(trial.params))
            study.tell(trial, _objective(trial.params))
        return asked

    per_question = run("each", once=False)
    assert run("once", once=True) == per_question
    assert run("resumed", once=True, resume_at=3) == per_question
    assert per_question[:2] == points


@pytest.mark.slow(weight=3)
def test_campaign_run_parses_once_and_a_stage_process_once(tmp_path: Path, tiny_base: Path, engines: Engines) -> None:
    """One `campaign run` of a small campaign (one trial) in a throwaway workspace parses its params file once in
    the campaign process, and once again when it is run again (a resume); a trial stage's CLI process
    (`python -m stages.train_lora`) parses the recorded params once."""
    ws = make_workspace(tmp_path / "ws", base_model=tiny_base)
    declare(ws, "once", campaign={"n_trials": 1, "n_init": 1, "baseline": False, "scheduler": engines.scheduler})
    for run in ("first", "resumed"):
        done, seen = counted(ws, tmp_path / f"{run}.json", "flows.cli", "run", "--params", "once.yaml", **engines.env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert len(seen) == 1, f"{run}: {len(seen)} parses:\n" + json.dumps(seen, indent=1)
        assert any("flows/cli.py" in frame for frame in seen[0]), seen  # the CLI's, before anything is written
    assert (ws / "campaigns/once/trials/t000/metrics.json").is_file()

    done, seen = counted(ws, tmp_path / "stage.json", "stages.train_lora", "--campaign", "once", "--trial", "t000")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(seen) == 1, f"{len(seen)} parses in the stage process:\n" + json.dumps(seen, indent=1)
