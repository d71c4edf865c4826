"""End to end: a generation campaign (campaign.kind: generate) on the best trial of a fine-tuning campaign of the
same workspace (`model.trial: ft@best`), and a joint campaign (LoRA and generation settings together), through the
Prefect flow, warm workers and DVC; then a clean clone rebuilds every campaign."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
import yaml

from hpo.analysis.compare import compare
from hpo.analysis.html_report import render
from hpo.config import load_params
from hpo.record.layout import CampaignPaths
from hpo.record.study import open_study

from .conftest import ROOT, make_workspace
from .test_e2e import _campaign, _dvc, _git

pytestmark = pytest.mark.slow

GEN_TRIALS = ("baseline", "t000", "t001", "t002", "t003", "t004")
BUDGET = 75.0
B_O = 6000.0  # tokens: the baseline alone spends ~1,400; stops after two TPE trials


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
    raw["campaign"].update({"name": "gen", "n_trials": 5, "n_init": 2})
    raw["generate"]["inference_budget"] = BUDGET  # tokens per instance: a prompt is ~55, so n × new tokens <= ~20
    raw["data"] = {**e2e["data"], "n_eval": 24}
    raw["model"] = {"trial": "ft@best"}  # resolved when the campaign starts: ft/t000
    path = ws / "gen.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _budgeted_params(ws: Path) -> Path:
    """The generation campaign again under another name, stopped by an optimisation budget (EcoOptiGen's B.o)."""
    raw = yaml.safe_load(_generation_params(ws).read_text())
    raw["campaign"].update({"name": "gen_bo", "n_trials": 6, "optimization_budget": B_O})
    path = ws / "gen_bo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _joint_params(ws: Path) -> Path:
    """The shipped joint campaign on the test's data, 2 design points that each train a few steps more on the
    fine-tuning campaign's trial (`model.trial: ft/t000`), merge, and generate on their own merged model."""
    raw = yaml.safe_load((ROOT / "params.joint.yaml").read_text())
    e2e = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update({"name": "jnt", "n_trials": 2, "n_init": 2, "baseline": False})
    raw["space"]["n"]["high"] = 4
    raw["data"], raw["model"], raw["train"] = {**e2e["data"], "n_eval": 24}, {"trial": "ft/t000"}, e2e["train"]
    path = ws / "jnt.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("gen") / "ws")
    for params in (_finetune_params(ws), _generation_params(ws), _budgeted_params(ws), _joint_params(ws)):
        done = _campaign(ws, "run", "--params", params.name)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (ws / f"{params.stem}.out").write_text(done.stdout)
    return ws


def test_optimization_budget_stops_proposing(workspace: Path) -> None:
    paths = CampaignPaths("gen_bo", workspace)
    recorded = sorted(yaml.safe_load(paths.trials.read_text()))  # baseline, t000, t001, … in the order they ran
    costs = [json.loads(paths.trial(t).metrics.read_text())["cost"]["inference_cost"] for t in recorded]
    assert len(recorded) - 1 < 6, "stopped before n_trials"
    assert sum(costs[:-1]) < B_O <= sum(costs), costs  # each proposal came while the spend was under B.o
    assert (
        f"stopped proposing: campaign.optimization_budget: {sum(costs):g} of {B_O:g} spent"
        in (workspace / "gen_bo.out").read_text()
    )
    best = json.loads((paths.report / "best.json").read_text())
    assert best["inference_cost"] == pytest.approx(sum(costs)) and best["optimization_budget"] == B_O


def test_two_runs_with_the_same_seed_give_identical_records(workspace: Path) -> None:
    """`gen_bo` is `gen` declared again (same seed, design and sampler) under another name, run by another `campaign
    run` with fresh workers, that stops early: every trial both ran has the same decision, the same responses byte
    for byte and the same score, state and cost."""
    gen, bo = CampaignPaths("gen", workspace), CampaignPaths("gen_bo", workspace)
    ran = yaml.safe_load(gen.trials.read_text()), yaml.safe_load(bo.trials.read_text())
    both = sorted(set(ran[0]) & set(ran[1]))
    assert len(both) >= 4, both
    for trial in both:
        assert ran[0][trial] == ran[1][trial], trial
        assert gen.trial(trial).responses.read_bytes() == bo.trial(trial).responses.read_bytes(), trial
        metrics = [json.loads(p.trial(trial).metrics.read_text()) for p in (gen, bo)]
        for key in ("state", "score", "cost", "budget", "generation", "tasks"):
            assert metrics[0].get(key) == metrics[1].get(key), (trial, key)


def test_generation_trials_are_recorded_with_their_costs(workspace: Path) -> None:
    paths = CampaignPaths("gen", workspace)
    params = load_params(paths.params)
    recorded = yaml.safe_load(paths.trials.read_text())
    states = {}
    for trial in GEN_TRIALS:
        out = paths.trial(trial)
        metrics = json.loads(out.metrics.read_text())
        states[trial] = metrics["state"]
        assert not out.adapter.exists() and not out.merged.exists()  # a generation trial trains nothing
        lines = [json.loads(x) for x in out.responses.read_text().splitlines()]
        n = recorded[trial]["params"]["n"]
        assert all(len(x["responses"]) == n for x in lines)
        cost = metrics["cost"]
        assert cost["responses"] == len(lines) * n
        assert cost["completion_tokens"] == sum(r["tokens"] for x in lines for r in x["responses"])
        assert cost["prompt_tokens"] == sum(x["prompt_tokens"] for x in lines)
        assert cost["inference_cost"] == cost["total_tokens"]  # no prices: the cost is in tokens
        max_new = recorded[trial]["params"]["max_new_tokens"]
        assert all(r["tokens"] <= max_new for x in lines for r in x["responses"])
        budget = metrics["budget"]
        assert (budget["n"], budget["max_new_tokens"], budget["valid"]) == (n, max_new, metrics["state"] == "complete")
        decision = recorded[trial]["budget"]["decision"]  # EcoOptiGen's rule 1, recorded before the trial ran
        if metrics["state"] == "complete":
            assert len(lines) == 24 and 0.0 <= metrics["score"] <= 1.0
            # the score is the success rate of the judged responses
            rates = [1 - (1 - sum(r["correct"] for r in x["responses"]) / n) ** n for x in lines]
            assert metrics["score"] == pytest.approx(sum(rates) / len(rates), abs=1e-6)
        elif decision == "prune":  # rule 1: nothing sampled
            assert lines == [] and "rule 1" in metrics["reason"] and metrics["score"] is None
        else:  # rule 2: stopped on a subset, over the budget by more than the margin
            last = budget["checks"][-1]
            assert metrics["state"] == "pruned" and "rule 2" in metrics["reason"] and metrics["score"] is None
            assert last["verdict"] == "invalid" and len(lines) == last["size"] < 24
            assert last["average_response_cost"] > last["response_budget"] * (1 + last["margin"])
            assert last["response_budget"] == pytest.approx(BUDGET - last["average_prompt_cost"], abs=1e-5)
    assert "pruned" in states.values() and list(states.values()).count("complete") >= 2, states
    assert recorded["baseline"]["params"]["temperature"] == params.generate.temperature == 0.0
    study = open_study(paths, params)
    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert len(finished) == 5
    pruned = [t for t in finished if t.state == optuna.trial.TrialState.PRUNED]
    assert [t.user_attrs["trial_id"] for t in pruned] == [t for t, v in states.items() if v == "pruned"]
    scores = [json.loads(paths.trial(t).metrics.read_text())["score"] for t in GEN_TRIALS if states[t] == "complete"]
    assert max(scores) > 0 and len(set(scores)) > 1, scores  # the model answers, and the settings matter
    with (paths.report / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["trial"] for r in rows] == list(GEN_TRIALS)
    assert "gen_tokens" in rows[0] and "train_tokens" not in rows[0]
    assert [r["state"] for r in rows] == list(states.values())
    assert all(r["reason"].startswith("pruned by EcoOptiGen") for r in rows if r["state"] == "pruned")
    best = json.loads((paths.report / "best.json").read_text())
    assert best["metric"].startswith("mean success_rate of exact_match")
    assert best["artefacts"]["responses"].endswith("responses.jsonl")
    searched = [v for t, v in states.items() if t != "baseline"]
    assert best["pruned"] == searched.count("pruned") and best["inference_budget"] == BUDGET
    assert best["inference_cost"] == sum(int(r["gen_tokens"]) for r in rows)
    # the HTML report lists every searched trial with its state, cost and why it was pruned; compare counts them
    page = render(["gen"], workspace)
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert "<h2>Trials: gen</h2>" in page and page.count("pruned by EcoOptiGen") == len(pruned)
    summary, diff = compare(["gen", "gen_bo"], workspace)
    assert summary.set_index("campaign").loc["gen", "pruned"] == len(pruned)
    assert "campaign.optimization_budget" in set(diff["setting"])


def _trace(ws: Path, campaign: str, trial: str) -> tuple[dict, dict[str, str]]:
    """`campaign trace`: the manifest, and each artefact's state on disk."""
    done = _campaign(ws, "trace", campaign, trial)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    end = done.stdout.index("\n}\n") + 2
    states = dict(line.split()[:2] for line in done.stdout[end:].splitlines() if line.strip())
    return json.loads(done.stdout[:end]), states


def test_trace_shows_generation_settings_hashes_and_the_base_models_trial(workspace: Path) -> None:
    manifest, states = _trace(workspace, "gen", "baseline")
    assert manifest["generation"]["cost"]["total_tokens"] > 0 and manifest["generation"]["seed"] is not None
    assert manifest["hashes"]["responses"]["md5"]
    assert manifest["hashes"]["responses"]["stage"] == "generate@gen-baseline"
    assert states == {"data": "ok", "base_model": "ok", "responses": "ok", "metrics": "ok", "eval_inputs": "ok"}
    # `model.trial: ft@best` was recorded as the trial it named then, whose own lineage the trace carries
    assert load_params(CampaignPaths("gen", workspace).params).model.trial == "ft/t000"
    source = manifest["base_model_from"]
    assert (source["campaign"], source["trial"], source["state"]) == ("ft", "t000", "complete")
    assert source["hashes"]["merged"]["md5"] and source["training"]["max_steps"] == 80


def test_joint_trials_train_then_generate_on_their_own_model(workspace: Path) -> None:
    paths = CampaignPaths("jnt", workspace)
    recorded = yaml.safe_load(paths.trials.read_text())
    assert sorted(recorded) == ["t000", "t001"]
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    for trial in recorded:
        out = paths.trial(trial)
        metrics, trained = json.loads(out.metrics.read_text()), json.loads(out.train_metrics.read_text())
        assert metrics["state"] == "complete" and 0.0 <= metrics["score"] <= 1.0
        assert trained["tokens"] > 0 and (out.merged / "lit_model.pth").is_file()
        n = recorded[trial]["params"]["n"]
        assert metrics["generation"]["n"] == n and metrics["generation"]["temperature"] == pytest.approx(
            recorded[trial]["params"]["temperature"]
        )
        assert all(len(json.loads(x)["responses"]) == n for x in out.responses.read_text().splitlines())
        deps = [d["path"] for d in lock[f"generate@jnt-{trial}"]["deps"]]
        assert f"campaigns/jnt/trials/{trial}/merged" in deps and "campaigns/jnt/base_model" not in deps
        assert f"score@jnt-{trial}" not in lock  # a joint trial's score is its generation's
    with (paths.report / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"train_tokens", "val_loss", "gen_tokens", "params.learning_rate", "params.n"} <= set(rows[0])
    manifest, states = _trace(workspace, "jnt", "t001")
    assert manifest["training"]["max_steps"] == 16 and manifest["generation"]["cost"]["total_tokens"] > 0
    assert manifest["base_model_from"]["trial"] == "t000" and manifest["base_model_from"]["campaign"] == "ft"
    assert states == dict.fromkeys(
        ("data", "base_model", "adapter", "train_metrics", "merged", "responses", "metrics", "eval_inputs"), "ok"
    )
    best = json.loads((paths.report / "best.json").read_text())
    assert set(best["artefacts"]) == {"adapter", "merged", "responses", "metrics"}


def test_dvc_is_clean_then_a_clean_clone_rebuilds_the_campaigns(workspace: Path, tmp_path: Path) -> None:
    """The generation and joint campaigns' base model is the fine-tuning trial's merged checkpoint, a DVC output: a
    clean clone rebuilds the fine-tuning trial first, then every generation and joint trial, byte for byte (the
    budgeted copy of the generation campaign is left out: the same stages again)."""
    assert "Data and pipelines are up to date." in _dvc(workspace, "status")
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-qm", "campaign records")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(workspace), str(clone))
    assert not (clone / "campaigns/gen/trials/t000/responses.jsonl").exists()
    targets = ("report@ft", "report@gen", "report@jnt")
    out = _dvc(clone, "repro", "-f", *targets)
    assert out.index("Running stage 'merge_lora@ft-t000'") < out.index("Running stage 'generate@gen-t000'")
    assert out.index("Running stage 'merge_lora@jnt-t001'") < out.index("Running stage 'generate@jnt-t001'")
    assert _git(clone, "status", "--porcelain") == "", _git(clone, "diff", "--stat")
    for trial in [f"gen/trials/{t}" for t in GEN_TRIALS] + ["jnt/trials/t000", "jnt/trials/t001"]:
        path = f"campaigns/{trial}/responses.jsonl"
        assert (clone / path).read_bytes() == (workspace / path).read_bytes()
    assert "Data and pipelines are up to date." in _dvc(clone, "status", "--with-deps", *targets)
