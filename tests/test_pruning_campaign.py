"""End to end: a fine-tuning campaign with a pruner (`campaign.pruner`) through the Prefect flow, warm workers and
DVC; the pruned trials are data, and a clean clone rebuilds them byte for byte without asking a pruner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
import yaml

from hpo.analysis.html_report import render
from hpo.config import load_params
from hpo.record.layout import CampaignPaths
from hpo.record.study import open_study

from .conftest import make_workspace
from .test_e2e import _campaign, _dvc, _git

pytestmark = pytest.mark.slow

MAX_STEPS, INTERVAL = 16, 4


def _pruned_params(ws: Path) -> Path:
    raw = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    pruner = {"name": "median", "n_startup_trials": 2}
    raw["campaign"].update({"name": "prn", "n_trials": 7, "n_init": 2, "pruner": pruner})
    raw["campaign"]["stop_after"] = {"wall_seconds": 10**6}  # never reached: trials.csv shows running totals
    raw["train"].update({"max_steps": MAX_STEPS, "eval_interval": INTERVAL})
    path = ws / "prn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _budget_params(ws: Path) -> Path:
    raw = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update({"name": "tok", "n_trials": 4, "n_init": 2, "baseline": False})
    raw["campaign"]["stop_after"] = {"train_tokens": 1, "wall_seconds": 10**6}
    raw["train"].update({"max_steps": 4, "eval_interval": 4})
    path = ws / "tok.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


TOKEN_LIMIT = 2500  # 8 steps of 4 examples: ~1,870 tokens with gradient accumulation 1, ~3,740 with 2


def _objectives_params(ws: Path) -> Path:
    raw = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update({"name": "mo", "n_trials": 5, "n_init": 2})
    raw["campaign"].update({"objectives": ["score", "lora_params"], "constraints": {"train_tokens": TOKEN_LIMIT}})
    raw["train"].update({"max_steps": 8, "eval_interval": 8})
    path = ws / "mo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("pruning") / "ws")
    for params in (_pruned_params(ws), _budget_params(ws), _objectives_params(ws)):
        done = _campaign(ws, "run", "--params", params.name)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (ws / f"{params.stem}.out").write_text(done.stdout)
    return ws


def test_pruned_trials_are_recorded_with_the_step_they_reached(workspace: Path) -> None:
    paths = CampaignPaths("prn", workspace)
    records = yaml.safe_load(paths.trials.read_text())
    study = open_study(paths, load_params(paths.params))
    trials = {t.user_attrs["trial_id"]: t for t in study.get_trials()}
    pruned = [tid for tid, t in trials.items() if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the median pruner stopped at least one of the 5 proposed trials"
    assert all(int(tid[1:]) >= 2 for tid in pruned), "the design points ran to the end (n_startup_trials: 2)"
    rows = {r["trial"]: r for r in csv.DictReader((paths.report / "trials.csv").open())}
    for tid, trial in trials.items():
        trained = json.loads(paths.trial(tid).train_metrics.read_text())
        metrics = json.loads(paths.trial(tid).metrics.read_text())
        steps = sorted(trial.intermediate_values)
        if tid in pruned:
            decision = records[tid]["pruned"]
            assert decision["by"].startswith("campaign.pruner median (n_startup_trials=2")
            assert trained["state"] == metrics["state"] == rows[tid]["state"] == "pruned"
            assert trained["steps"] == decision["step"] == steps[-1] < MAX_STEPS
            assert trained["reason"] == f"pruned at step {decision['step']} of {MAX_STEPS} by {decision['by']}"
            assert rows[tid]["reason"] == trained["reason"] and metrics["score"] is None
            assert (paths.trial(tid).merged / "NOT_MERGED.json").is_file(), "nothing merged or scored"
            # the loss the pruner saw is the trial's validation loss at that step, negated (the campaign maximises)
            assert trial.intermediate_values[steps[-1]] == pytest.approx(-trained["val_loss"], abs=1e-5)
        else:
            assert "pruned" not in records[tid] and trained["state"] == "complete" and trained["steps"] == MAX_STEPS
            assert steps == list(range(INTERVAL, MAX_STEPS, INTERVAL)), "asked at every interval but the last"
    best = json.loads((paths.report / "best.json").read_text())
    assert best["best"]["trial"] not in pruned
    assert best["pruned"] == len(pruned)
    assert best["train_steps"] == sum(int(r["train_steps"]) for r in rows.values()) < MAX_STEPS * len(rows)
    page = render(["prn"], workspace)
    assert page.count("pruned at step") == len(pruned), "the HTML report's trials table says why"


def test_a_training_budget_stops_proposing_and_totals_are_shown(workspace: Path) -> None:
    """`campaign.stop_after.train_tokens`: the first trial spends the budget, so no other is proposed; the running
    totals are in trials.csv (training tokens, in trial order) and the progress line (wall time and tokens)."""
    paths = CampaignPaths("tok", workspace)
    rows = list(csv.DictReader((paths.report / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["t000"]
    tokens = int(rows[0]["train_tokens"])
    assert float(rows[0]["train_tokens_total"]) == tokens > 0
    out = (workspace / "tok.out").read_text()
    assert f"stopped proposing: campaign.stop_after.train_tokens: {tokens} of 1 spent" in out
    assert f"{tokens:,} train tok)" in out
    pruned = list(csv.DictReader((CampaignPaths("prn", workspace).report / "trials.csv").open()))
    totals = [float(r["train_tokens_total"]) for r in pruned]
    assert totals == [sum(int(r["train_tokens"]) for r in pruned[: i + 1]) for i in range(len(pruned))]


def test_a_multi_objective_campaign_with_a_constraint(workspace: Path) -> None:
    """Score and LoRA weights as objectives, training tokens capped: the study is told both values, the sampler
    the violations; infeasible trials are recorded and shown as such; the Pareto front is that of the feasible
    complete trials, in best.json, trials.csv and the run's output."""
    paths = CampaignPaths("mo", workspace)
    study = open_study(paths, load_params(paths.params))
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    rows = {r["trial"]: r for r in csv.DictReader((paths.report / "trials.csv").open())}
    lineage = yaml.safe_load(paths.lineage.read_text())
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        tid = t.user_attrs["trial_id"]
        trained = json.loads(paths.trial(tid).train_metrics.read_text())
        assert t.values == [pytest.approx(float(rows[tid]["score"])), trained["lora_params"]]
        feasible = trained["tokens"] <= TOKEN_LIMIT
        assert lineage[tid]["feasible"] is feasible and rows[tid]["feasible"] == str(feasible)
        assert t.constraints == {"train_tokens": trained["tokens"] - TOKEN_LIMIT}, "what the sampler reads"
    verdicts = {tid: r["feasible"] for tid, r in rows.items() if tid != "baseline"}
    assert set(verdicts.values()) == {"True", "False"}, f"both kinds of trial in this campaign: {verdicts}"
    best = json.loads((paths.report / "best.json").read_text())
    assert rows[best["best"]["trial"]]["feasible"] == "True"
    candidates = [r for t, r in rows.items() if t != "baseline" and r["feasible"] == "True"]
    front = {
        r["trial"]
        for r in candidates
        if not any(
            float(o["score"]) >= float(r["score"])
            and int(o["lora_params"]) <= int(r["lora_params"])
            and (float(o["score"]), int(o["lora_params"])) != (float(r["score"]), int(r["lora_params"]))
            for o in candidates
        )
    }
    assert {p["trial"] for p in best["pareto_front"]} == front == {t for t, r in rows.items() if r["pareto"] == "True"}
    assert best["objectives"] == {"score": "maximize", "lora_params": "minimize"}
    out = (workspace / "mo.out").read_text()
    assert "Pareto front (score maximize, lora_params minimize):" in out
    infeasible = [r["feasible"] for r in rows.values()].count("False")  # the baseline (batch 16) among them
    assert out.count("[infeasible: over campaign.constraints]") == infeasible


def test_a_clean_clone_rebuilds_the_pruned_trials_byte_for_byte(workspace: Path, tmp_path: Path) -> None:
    """The pruning decisions are in trials.yaml: `dvc repro -f` on a clean clone trains each pruned trial to its
    recorded step (no study, no pruner) and every record — dvc.lock's adapter hashes, train.json, loss.csv,
    metrics, the report — comes out unchanged."""
    assert "Data and pipelines are up to date." in _dvc(workspace, "status")
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-qm", "campaign records")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(workspace), str(clone))
    assert not (clone / ".dvc/cache").exists()
    out = _dvc(clone, "repro", "-f", "report@prn", "report@tok", "report@mo")
    assert "Running stage 'train_lora@prn-t002'" in out
    assert _git(clone, "status", "--porcelain") == "", _git(clone, "diff", "--stat")
    for tid in yaml.safe_load((clone / "campaigns/prn/trials.yaml").read_text()):
        path = f"campaigns/prn/trials/{tid}/adapter/lit_model.pth.lora"
        assert (clone / path).read_bytes() == (workspace / path).read_bytes()
