"""End to end: a generation campaign (campaign.kind: generate) on a model fine-tuned by a fine-tuning campaign of the
same workspace, through the Prefect flow, warm workers and DVC; then a clean clone rebuilds both campaigns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
import yaml

from hpo.config import load_params
from hpo.record.layout import CampaignPaths
from hpo.record.study import open_study

from .conftest import ROOT, make_workspace
from .test_e2e import _campaign, _dvc, _git

pytestmark = pytest.mark.slow

GEN_TRIALS = ("baseline", "t000", "t001", "t002")


def _finetune_params(ws: Path) -> Path:
    raw = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update({"name": "ft", "n_trials": 1, "n_init": 1, "baseline": False})
    # a region where 80 steps teach the tiny model to answer (greedy exact match ~0.2 on the generative task)
    raw["space"] = {
        "learning_rate": {"type": "float", "low": 0.015, "high": 0.03, "log": True},
        "lora_r": {"type": "int", "low": 8, "high": 16},
        "lora_alpha": {"type": "int", "low": 16, "high": 32},
    }
    raw["train"].update({"max_steps": 80, "lora_dropout": 0.0, "weight_decay": 0.001})
    raw["data"].update({"n_eval": 24})
    path = ws / "ft.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _generation_params(ws: Path) -> Path:
    raw = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    e2e = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update({"name": "gen", "n_trials": 3, "n_init": 2})
    raw["data"] = {**e2e["data"], "n_eval": 24}
    raw["model"] = {"checkpoint_dir": "campaigns/ft/trials/t000/merged"}
    path = ws / "gen.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("gen") / "ws")
    for params in (_finetune_params(ws), _generation_params(ws)):
        done = _campaign(ws, "run", "--params", params.name)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ws


def test_generation_trials_are_recorded_with_their_costs(workspace: Path) -> None:
    paths = CampaignPaths("gen", workspace)
    params = load_params(paths.params)
    recorded = yaml.safe_load(paths.trials.read_text())
    for trial in GEN_TRIALS:
        out = paths.trial(trial)
        metrics = json.loads(out.metrics.read_text())
        assert metrics["state"] == "complete" and 0.0 <= metrics["score"] <= 1.0
        assert not out.adapter.exists() and not out.merged.exists()  # a generation trial trains nothing
        lines = [json.loads(x) for x in out.responses.read_text().splitlines()]
        n = recorded[trial]["params"]["n"]
        assert len(lines) == 24 and all(len(x["responses"]) == n for x in lines)
        cost = metrics["cost"]
        assert cost["responses"] == 24 * n
        assert cost["completion_tokens"] == sum(r["tokens"] for x in lines for r in x["responses"])
        assert cost["prompt_tokens"] == sum(x["prompt_tokens"] for x in lines)
        # the score is the success rate of the judged responses
        rates = [1 - (1 - sum(r["correct"] for r in x["responses"]) / n) ** n for x in lines]
        assert metrics["score"] == pytest.approx(sum(rates) / len(rates), abs=1e-6)
        max_new = recorded[trial]["params"]["max_new_tokens"]
        assert all(r["tokens"] <= max_new for x in lines for r in x["responses"])
    assert recorded["baseline"]["params"]["temperature"] == params.generate.temperature == 0.0
    scores = [json.loads(paths.trial(t).metrics.read_text())["score"] for t in GEN_TRIALS]
    assert max(scores) > 0 and len(set(scores)) > 1, scores  # the model answers, and the settings matter
    study = open_study(paths, params)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3
    with (paths.report / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["trial"] for r in rows] == list(GEN_TRIALS)
    assert "gen_tokens" in rows[0] and "train_tokens" not in rows[0]
    assert all(int(r["gen_tokens"]) > 0 for r in rows)
    best = json.loads((paths.report / "best.json").read_text())
    assert best["metric"].startswith("mean success_rate of exact_match")
    assert best["artefacts"]["responses"].endswith("responses.jsonl")


def test_trace_shows_generation_settings_and_hashes(workspace: Path) -> None:
    done = _campaign(workspace, "trace", "gen", "t001")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    end = done.stdout.index("\n}\n") + 2
    manifest = json.loads(done.stdout[:end])
    assert manifest["generation"]["cost"]["total_tokens"] > 0 and manifest["generation"]["seed"] is not None
    assert manifest["hashes"]["responses"]["md5"] and manifest["hashes"]["responses"]["stage"] == "generate@gen-t001"
    states = dict(line.split()[:2] for line in done.stdout[end:].splitlines() if line.strip())
    assert states == {"data": "ok", "base_model": "ok", "responses": "ok", "metrics": "ok", "eval_inputs": "ok"}


def test_dvc_is_clean_then_a_clean_clone_rebuilds_both_campaigns(workspace: Path, tmp_path: Path) -> None:
    """The generation campaign's base model is the fine-tuning trial's merged checkpoint, a DVC output: a clean
    clone rebuilds the fine-tuning trial first, then every generation trial, byte for byte."""
    assert "Data and pipelines are up to date." in _dvc(workspace, "status")
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-qm", "campaign records")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(workspace), str(clone))
    assert not (clone / "campaigns/gen/trials/t000/responses.jsonl").exists()
    out = _dvc(clone, "repro", "-f")
    assert out.index("Running stage 'merge_lora@ft-t000'") < out.index("Running stage 'generate@gen-t000'")
    assert _git(clone, "status", "--porcelain") == "", _git(clone, "diff", "--stat")
    for trial in GEN_TRIALS:
        path = f"campaigns/gen/trials/{trial}/responses.jsonl"
        assert (clone / path).read_bytes() == (workspace / path).read_bytes()
    assert "Data and pipelines are up to date." in _dvc(clone, "status")
