"""End to end, one workspace: each kind of campaign runs once through `campaign run` (Prefect flow, a warm Dask
worker, DVC) and every test reads what they left.

- `e2e`: fine-tuning with a pruner (Optuna's median pruner on validation losses), baseline, 2 design points then
  TPE, running totals against a wall-time budget;
- `mo`: score and LoRA weights as objectives, training tokens capped (a constraint);
- `ft` → `gen` → `jnt`: a fine-tuning trial taught to answer; a generation campaign on `ft@best` with an inference
  budget (EcoOptiGen's rules) and an optimisation budget; a joint campaign training on `ft/t000` and sampling
  with its own adapter;
- `warm`: warm-started from `e2e`, stopped by a training-token budget after its first trial.

Then: the record is complete and consistent (study, each trial's decision and dvc.lock, metrics, the untuned
reference beside the baseline, report, HTML),
`dvc status` is clean and a no-op `dvc repro` runs nothing, `campaign run` again resumes without running a stage,
trace and compare read it, trials record adapters (only a campaign's best and an exported trial are merged), and a
clean clone's `dvc repro -f` rebuilds one trial of each kind and state byte for byte.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from hpo.analysis.compare import compare
from hpo.analysis.html_report import render
from hpo.checkpoint import check_checkpoint
from hpo.config import load_params
from hpo.layout import CampaignPaths
from hpo.record.records import read_lineage, read_trials
from hpo.search.study import open_study

from .helpers import (
    ROOT,
    Engines,
    campaign,
    clean_clone,
    declare,
    dvc_out,
    git,
    make_workspace,
    run_ok,
    trace,
    trial_stage,
)

pytestmark = pytest.mark.slow(weight=10)

MAX_STEPS, INTERVAL = 16, 4
TOKEN_LIMIT = 2500  # 8 steps of 4 examples: ~1,870 tokens with gradient accumulation 1, ~3,740 with 2
BUDGET, B_O = 75.0, 7000.0  # inference tokens per instance (a prompt is ~55); optimisation budget in tokens
CHUNK = 4  # the generation campaign's eval.pruner: Wilcoxon after every 4 instances of 24
E2E = ("baseline", "t000", "t001", "t002", "t003", "t004", "t005")


def _declarations(ws: Path, scheduler: str) -> list[Path]:
    runs = {"scheduler": scheduler}
    e2e = declare(
        ws,
        "e2e",
        campaign={
            **runs,
            "n_trials": 6,
            "pruner": {"name": "median", "n_startup_trials": 2},
            "stop_after": {"wall_seconds": 10**6},  # never reached: trials.csv shows running totals
        },
        train={"max_steps": MAX_STEPS, "eval_interval": INTERVAL},
        eval={"pruner": {"name": "wilcoxon", "chunk": 10}},  # beside the median pruner: scored 10 at a time
    )
    mo = declare(
        ws,
        "mo",
        campaign={**runs, "n_trials": 5, "objectives": ["score", "lora_params"]},
        train={"max_steps": 8, "eval_interval": 8},
    )
    raw = yaml.safe_load(mo.read_text())
    raw["campaign"]["constraints"] = {"train_tokens": TOKEN_LIMIT}
    mo.write_text(yaml.safe_dump(raw))
    # a region where 80 steps teach the tiny model to answer (greedy exact match ~0.2 on the generative task)
    ft = declare(
        ws,
        "ft",
        campaign={**runs, "n_trials": 1, "n_init": 1, "baseline": False},
        space={
            "replace": {
                "learning_rate": {"type": "float", "low": 0.015, "high": 0.03, "log": True},
                "lora_r": {"type": "int", "low": 8, "high": 16},
                "lora_alpha": {"type": "int", "low": 16, "high": 32},
            }
        },
        train={"max_steps": 80, "lora_dropout": 0.0, "weight_decay": 0.001},
        data={"n_eval": 24},
    )
    e2e_data = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())["data"]
    gen = declare(
        ws,
        "gen",
        base="params.generation.yaml",
        campaign={**runs, "n_trials": 8, "n_init": 2, "optimization_budget": B_O},
        generate={"inference_budget": BUDGET},  # n × new tokens <= ~20
        eval={"pruner": {"name": "wilcoxon", "chunk": CHUNK}},
        data={"replace": {**e2e_data, "n_eval": 24}},
        model={"replace": {"trial": "ft@best"}},  # resolved when the campaign starts: ft/t000
    )
    joint = yaml.safe_load((ROOT / "params.joint.yaml").read_text())
    jnt = declare(
        ws,
        "jnt",
        base="params.joint.yaml",
        campaign={**runs, "n_trials": 2, "n_init": 2, "baseline": False},
        space={"n": {**joint["space"]["n"], "high": 4}},
        data={"replace": {**e2e_data, "n_eval": 24}},
        model={"replace": {"trial": "ft/t000"}},
        train={"replace": yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())["train"]},
    )
    return [e2e, mo, ft, gen, jnt]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, engines: Engines) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("campaigns") / "ws", base_model=tiny_base)
    for params in _declarations(ws, engines.scheduler):
        out = run_ok(ws, "run", "--params", params.name, extra_env=engines.env)
        (ws / f"{params.stem}.out").write_text(out)
    return ws


# --- fine-tuning with a pruner -----------------------------------------------------------------------------------


def test_every_trial_is_recorded_and_pruned_ones_with_the_step_they_reached(ws: Path) -> None:
    paths = CampaignPaths("e2e", ws)
    records = read_trials(paths)
    study = open_study(paths, load_params(paths.params))
    trials = {t.user_attrs["trial_id"]: t for t in study.get_trials()}
    assert sorted(records) == list(E2E) and sorted(trials) == list(E2E[1:])
    pruned = [tid for tid in records if "pruned" in records[tid]]  # by the median pruner, while training
    assert pruned, "the median pruner stopped at least one of the 4 proposed trials"
    assert all(int(tid[1:]) >= 2 for tid in pruned), "the design points ran to the end (n_startup_trials: 2)"
    design = json.loads(paths.design.read_text())
    assert [trials[t].params for t in ("t000", "t001")] == design, "design points run first"
    assert trials["t000"].user_attrs["data_hash"]
    rows = {r["trial"]: r for r in csv.DictReader((paths.report / "trials.csv").open())}
    assert next(iter(rows)) == "untuned", "the untuned reference's row comes first"
    untuned = rows.pop("untuned")
    best = json.loads((paths.report / "best.json").read_text())
    for tid in E2E:
        out = paths.trial(tid)
        trained = json.loads(out.train_metrics.read_text())
        metrics = json.loads(out.metrics.read_text())
        assert (out.adapter / "lit_model.pth.lora").is_file() and trained["tokens"] > 0
        if tid in pruned:
            trial = trials[tid]
            steps = sorted(trial.intermediate_values)
            decision = records[tid]["pruned"]
            assert decision["by"].startswith("campaign.pruner median (n_startup_trials=2")
            assert trained["state"] == metrics["state"] == rows[tid]["state"] == "pruned"
            assert trained["steps"] == decision["step"] == steps[-1] < MAX_STEPS
            assert trained["reason"] == f"pruned at step {decision['step']} of {MAX_STEPS} by {decision['by']}"
            assert rows[tid]["reason"] == trained["reason"] and metrics["score"] is None
            assert not out.merged.exists(), "nothing merged or scored"
            # the loss the pruner saw is the trial's validation loss at that step, negated (the campaign maximises)
            assert trial.intermediate_values[steps[-1]] == pytest.approx(-trained["val_loss"], abs=1e-5)
        elif "eval_pruned" in records[tid]:  # Wilcoxon stopped its scoring after a chunk, worse than the best
            evaluated = records[tid]["eval_pruned"]["instances"]
            assert metrics["state"] == rows[tid]["state"] == "pruned" and metrics["score"] is None
            assert evaluated % 10 == 0 and evaluated < 60 == metrics["evaluation"]["of"]
            assert int(rows[tid]["evaluated"]) == evaluated == len(out.instances.read_text().splitlines())
        else:
            assert metrics["state"] == "complete" and 0.0 <= metrics["score"] <= 1.0
            # scored in the campaign's order, 10 instances at a time: every instance's acc, their mean the score
            values = [json.loads(x)["value"] for x in out.instances.read_text().splitlines()]
            assert metrics["evaluation"] == {"instances": 60, "of": 60, "saved": 0.0}
            assert sum(values) / 60 == pytest.approx(metrics["score"], abs=1e-6) and rows[tid]["evaluated"] == "60"
            # a trial records its adapter; only the best is merged (the checkpoint best.json points at)
            assert (out.merged / "lit_model.pth").is_file() == (tid == best["best"]["trial"])
            assert "pruned" not in records[tid] and trained["steps"] == MAX_STEPS
            if tid != "baseline":
                steps = sorted(trials[tid].intermediate_values)
                assert steps == list(range(INTERVAL, MAX_STEPS, INTERVAL)), "asked at every interval but the last"
    assert best["artefacts"]["merged"] == str(CampaignPaths("e2e").trial(best["best"]["trial"]).merged)
    assert best["best"]["trial"] not in pruned and best["baseline_score"] is not None
    assert best["pruned"] == len(pruned)
    assert best["train_steps"] == sum(int(r["train_steps"]) for r in rows.values()) < MAX_STEPS * len(rows)
    totals = [float(r["train_tokens_total"]) for r in rows.values()]
    assert totals == [sum(int(r["train_tokens"]) for r in list(rows.values())[: i + 1]) for i in range(len(rows))]
    assert (paths.report / "history.png").stat().st_size > 1000
    page = render(["e2e"], ws)
    assert page.count("pruned at step") == len(pruned), "the HTML report's trials table says why"

    # the untuned reference: the base model scored as the trials are (same eval seed; with eval.pruner the same
    # instances in the same order, never stopped), beside the baseline everywhere
    reference = json.loads(paths.untuned.metrics.read_text())
    baseline = json.loads(paths.trial("baseline").metrics.read_text())
    assert reference["state"] == "complete" and 0.0 <= reference["score"] <= 1.0
    assert reference["lm_eval"]["seed"] == baseline["lm_eval"]["seed"] == records["baseline"]["seeds"]["eval"]
    assert reference["evaluation"] == {"instances": 60, "of": 60, "saved": 0.0}

    def order(out: Path) -> list[tuple[str, int]]:
        return [(x["task"], x["doc_id"]) for x in map(json.loads, (out / "instances.jsonl").read_text().splitlines())]

    assert order(paths.untuned.dir) == order(paths.trial("baseline").dir), "paired instance for instance"
    assert untuned["baseline"] == "True" and untuned["state"] == "complete" and untuned["train_tokens"] == ""
    assert float(untuned["score"]) == best["untuned_score"] == reference["score"]
    assert "e2e: untuned" in page
    out = (ws / "e2e.out").read_text()
    assert f"untuned  complete score={reference['score']:.4f}" in out
    references = f"untuned {reference['score']:.4f}   baseline (litgpt default LoRA) {best['baseline_score']:.4f}"
    assert f"{references}   best {best['best']['trial']} {best['best']['score']:.4f}" in out


def test_dvc_is_clean_its_commands_read_the_record_and_repro_is_a_no_op(ws: Path) -> None:
    assert "Data and pipelines are up to date." in dvc_out(ws, "status")
    assert "Running stage" not in dvc_out(ws, "repro")
    metrics = json.loads(dvc_out(ws, "metrics", "show", "--json"))
    files = next(iter(metrics.values()))["data"]
    assert files["campaigns/e2e/trials/t001/metrics.json"]["data"]["state"] == "complete"
    assert 0.0 <= files["campaigns/e2e/untuned/metrics.json"]["data"]["score"] <= 1.0, "the untuned reference"
    assert "campaigns/e2e/trials/t001/loss.csv" in dvc_out(ws, "plots", "show", "--json")
    assert "campaigns/e2e/params.yaml" in dvc_out(ws, "params", "diff", "--all")
    # The README's readable experiments table: only each trial's score and state, no cell cut to "…".
    table = dvc_out(ws, "exp", "show", "--md", "--drop", ".*", "--keep", r"Experiment|.*/metrics\.json:(score|state)$")
    header = next(line for line in table.splitlines() if line.startswith("|"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[0] == "Experiment" and all(c.endswith((":state", ":score")) for c in columns[1:])
    assert {f"{p.relative_to(ws)}:state" for p in ws.glob("campaigns/*/trials/*/metrics.json")} <= set(columns)
    assert "…" not in table
    assert "campaigns/e2e/trials/t001/metrics.json:score" in header


def test_status_lists_every_trial(ws: Path) -> None:
    out = run_ok(ws, "status", "e2e")
    assert all(tid in out for tid in E2E) and "pruned" in out


def test_trace_prints_lineage_and_finds_a_changed_artefact(ws: Path) -> None:
    _, record, states = trace(ws, "e2e", "t001")
    assert record["params"] and record["seeds"]["train"] and record["code"]["commit"]
    assert record["hashes"]["adapter"]["md5"].endswith(".dir") and record["libraries"]["litgpt"] == "0.5.13"
    assert record["evaluation"]["padding_side"] == "right" and record["training"]["tokens_seen"] > 0
    assert set(states.values()) == {"ok"}
    best = json.loads((ws / "campaigns/e2e/report/best.json").read_text())["best"]["trial"]
    assert ("merged" in states) == (best == "t001"), "a merged model is an artefact of the trials merged"
    _, _, best_states = trace(ws, "e2e", best)
    assert best_states["merged"] == "ok"
    _, reference, reference_states = trace(ws, "e2e", "untuned")  # the untuned reference, traced as a trial is
    assert reference["state"] == "complete" and reference["seeds"]["eval"] == record["seeds"]["eval"]
    assert reference["hashes"]["instances"]["stage"] == "untuned@e2e" and reference["evaluation"]["inputs"]
    assert reference_states == dict.fromkeys(("data", "base_model", "instances", "metrics", "eval_inputs"), "ok")
    adapter = ws / "campaigns/e2e/trials/t001/adapter/lit_model.pth.lora"
    original = adapter.read_bytes()
    try:
        adapter.write_bytes(original[:-8] + b"\0" * 8)
        done = campaign(ws, "trace", "e2e", "t001")
        assert done.returncode == 2
        assert "t001: adapter modified" in done.stderr
    finally:
        adapter.write_bytes(original)


def test_rerun_resumes_without_rerunning(ws: Path, engines: Engines) -> None:
    before = (ws / "campaigns/e2e/trials/t000/train.json").read_text()
    reference = ws / "campaigns/e2e/untuned/metrics.json"
    written = reference.stat().st_mtime_ns
    out = run_ok(ws, "run", "--params", "e2e.yaml", extra_env=engines.env)
    assert "train_lora" not in out, "no stage runs again"
    assert (ws / "campaigns/e2e/trials/t000/train.json").read_text() == before
    assert "untuned  complete" in out and "(recorded by an earlier run)" in out, "nor the untuned reference"
    assert reference.stat().st_mtime_ns == written
    assert (ws / "campaigns/e2e/logs/untuned.log").read_text().count("Running stage 'untuned@e2e'") == 1


def test_an_adopted_trial_skips_the_stages_dvc_lock_records(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial left running by a stopped run is run again on resume; when the stop came after its `dvc commit`,
    the worker finds each stage recorded and unchanged and runs none of them (as `dvc repro` would not)."""
    from hpo.trials.finetune import STAGES
    from hpo.trials.worker import run_trial

    def never(paths: CampaignPaths, trial: str, **given: object) -> None:
        raise AssertionError(f"a recorded stage ran again for {trial}")

    monkeypatch.chdir(ws)  # (the worker works in the workspace; put back afterwards)
    monkeypatch.setattr(sys, "path", list(sys.path))
    lock = (ws / "campaigns/e2e/trials/t001/dvc.lock").read_text()
    metrics = run_trial(str(ws), "e2e", "t001", "adopted", dict.fromkeys(STAGES, never), adopted=True)
    assert metrics["state"] == "complete" and metrics["stage_seconds"] == {}
    log = (ws / "campaigns/e2e/logs/t001.log").read_text()
    assert all(f"Stage '{trial_stage('e2e', 't001', n)}' is recorded in dvc.lock and unchanged" in log for n in STAGES)
    assert (ws / "campaigns/e2e/trials/t001/dvc.lock").read_text() == lock, "nothing to commit"


def test_export_merges_a_trial_on_demand_and_refuses_what_has_no_model(ws: Path) -> None:
    """`campaign export` of a complete trial that is not the best: DVC merges it (a registered merge_lora stage,
    so the workspace stays clean and `dvc repro` rebuilds it), the copy is a litgpt checkpoint and the output says
    how to load it; a pruned trial, an unknown one and a generation trial are refused in one line, exit 2, with
    nothing written."""
    paths = CampaignPaths("e2e", ws)
    best = json.loads((paths.report / "best.json").read_text())["best"]["trial"]
    states = {t: json.loads(paths.trial(t).metrics.read_text())["state"] for t in E2E}
    trial = next(t for t in E2E if states[t] == "complete" and t != best)
    pruned = next(t for t in E2E if states[t] == "pruned")
    for args, expected in (
        (("e2e", pruned), f"campaign export: e2e/{pruned} is not complete (state: pruned); expected a complete trial"),
        (("e2e", "t999"), "campaign export: campaign 'e2e' has no trial 't999'"),
        (("gen", "t000"), "campaign export: campaign 'gen' is a generate campaign, whose trials train no model"),
    ):
        done = campaign(ws, "export", *args, "--to", "refused")
        assert done.returncode == 2 and done.stderr.startswith(f"error: {expected}"), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not (ws / "refused").exists()
    assert not paths.trial(trial).merged.exists()
    out = run_ok(ws, "export", "e2e", trial, "--to", "exported")
    check_checkpoint(ws / "exported")
    merged = paths.trial(trial).merged / "lit_model.pth"
    assert (ws / "exported/lit_model.pth").read_bytes() == merged.read_bytes()
    assert "litgpt generate exported" in out and f"campaign export e2e {trial} --format hf --to DIR" in out
    registry = yaml.safe_load((ws / "campaigns/registry.yaml").read_text())
    assert registry["merges"][f"e2e-{trial}"]["reason"] == "export"
    # the same trial as a Hugging Face folder: the recorded merge reused, converted into the new folder
    out = run_ok(ws, "export", "e2e", trial, "--format", "hf", "--to", "exported-hf")
    assert "Hugging Face transformers folder: exported-hf" in out and "from_pretrained(" in out
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (ws / "exported-hf").iterdir()}
    _same_model(paths.trial(trial).merged, ws / "exported-hf")
    assert "Data and pipelines are up to date." in dvc_out(ws, "status")
    shutil.rmtree(ws / "exported")
    shutil.rmtree(ws / "exported-hf")


def _same_model(checkpoint_dir: Path, folder: Path) -> None:
    """The exported folder opens offline, every weight in place, and computes litgpt's logits of the checkpoint."""
    import torch
    from litgpt import Config, Tokenizer
    from litgpt.model import GPT
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf, info = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    assert not any(info.values()), info
    lit = GPT(Config.from_file(checkpoint_dir / "model_config.yaml"))
    lit.load_state_dict(torch.load(checkpoint_dir / "lit_model.pth", weights_only=True))
    text = "Text: the market rose. Topic:"
    ids = Tokenizer(checkpoint_dir).encode(text)[None].long()  # BOS first, as the exported tokenizer puts it
    assert AutoTokenizer.from_pretrained(folder, local_files_only=True)(text)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(hf.eval()(ids).logits, lit.eval()(ids), atol=1e-4, rtol=0)


def test_a_multi_objective_campaign_with_a_constraint(ws: Path) -> None:
    """Score and LoRA weights as objectives, training tokens capped: the study is told both values, the sampler
    the violations; infeasible trials are recorded and shown as such; the Pareto front is that of the feasible
    complete trials, in best.json, trials.csv and the run's output."""
    paths = CampaignPaths("mo", ws)
    study = open_study(paths, load_params(paths.params))
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    rows = {r["trial"]: r for r in csv.DictReader((paths.report / "trials.csv").open())}
    lineage = read_lineage(paths)
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        tid = t.user_attrs["trial_id"]
        trained = json.loads(paths.trial(tid).train_metrics.read_text())
        assert t.values == [pytest.approx(float(rows[tid]["score"])), trained["lora_params"]]
        feasible = trained["tokens"] <= TOKEN_LIMIT
        assert lineage[tid]["feasible"] is feasible and rows[tid]["feasible"] == str(feasible)
        assert t.constraints == {"train_tokens": trained["tokens"] - TOKEN_LIMIT}, "what the sampler reads"
    verdicts = {tid: r["feasible"] for tid, r in rows.items() if r["baseline"] != "True"}  # (not the references)
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
    out = (ws / "mo.out").read_text()
    assert "Pareto front (score maximize, lora_params minimize):" in out
    infeasible = [r["feasible"] for r in rows.values()].count("False")  # the baseline (batch 16) among them
    assert out.count("[infeasible: over campaign.constraints]") == infeasible


# --- generation and joint campaigns on a fine-tuning campaign's trial ----------------------------------------------


def test_generation_trials_are_recorded_with_their_costs_and_the_budget_stops_proposing(ws: Path) -> None:
    paths = CampaignPaths("gen", ws)
    params = load_params(paths.params)
    recorded = read_trials(paths)  # baseline, t000, t001, … in the order they ran
    ran = sorted(recorded)
    states = {}
    for trial in ran:
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
        assert (budget["n"], budget["max_new_tokens"]) == (n, max_new)
        decision = recorded[trial]["budget"]["decision"]  # EcoOptiGen's rule 1, recorded before the trial ran
        values = {(x["task"], x["doc_id"]): x["value"] for x in map(json.loads, out.instances.read_text().splitlines())}
        assert set(values) == {(x["task"], x["doc_id"]) for x in lines}  # each sampled instance's utility
        if metrics["state"] == "complete":
            assert len(lines) == 24 and 0.0 <= metrics["score"] <= 1.0 and budget["valid"] is True
            # the score is the success rate of the judged responses
            rates = [1 - (1 - sum(r["correct"] for r in x["responses"]) / n) ** n for x in lines]
            assert metrics["score"] == pytest.approx(sum(rates) / len(rates), abs=1e-6)
            assert sum(values.values()) / 24 == pytest.approx(metrics["score"], abs=1e-5)
        elif "eval_pruned" in recorded[trial]:  # Wilcoxon: worse than the best on the instances sampled so far
            evaluated = recorded[trial]["eval_pruned"]["instances"]
            assert metrics["reason"].startswith("pruned by eval.pruner wilcoxon (p_threshold=0.1")
            assert metrics["reason"].endswith(f"after {evaluated} of 24 instances") and metrics["score"] is None
            assert len(lines) == evaluated == metrics["evaluation"]["instances"] and evaluated % CHUNK == 0
            assert budget["valid"] is not False, "rule 1 learns nothing over the budget from it"
        elif decision == "prune":  # rule 1: nothing sampled
            assert lines == [] and "rule 1" in metrics["reason"] and metrics["score"] is None
        else:  # rule 2: stopped on a subset, over the budget by more than the margin
            last = budget["checks"][-1]
            assert metrics["state"] == "pruned" and "rule 2" in metrics["reason"] and metrics["score"] is None
            assert last["verdict"] == "invalid" and len(lines) == last["size"] < 24
            assert last["average_response_cost"] > last["response_budget"] * (1 + last["margin"])
            assert last["response_budget"] == pytest.approx(BUDGET - last["average_prompt_cost"], abs=1e-5)
    assert "pruned" in states.values() and list(states.values()).count("complete") >= 2, states
    assert any("eval_pruned" in r for r in recorded.values()), "Wilcoxon stopped a trial (beside EcoOptiGen's rules)"
    assert recorded["baseline"]["params"]["temperature"] == params.generate.temperature == 0.0
    # the optimisation budget: each proposal came while the spend was under B.o, and proposing stopped then
    costs = [json.loads(paths.trial(t).metrics.read_text())["cost"]["inference_cost"] for t in ran]
    assert len(ran) - 1 < 8, "stopped before n_trials"
    assert sum(costs[:-1]) < B_O <= sum(costs), costs
    out = (ws / "gen.out").read_text()
    assert f"stopped proposing: campaign.optimization_budget: {sum(costs):g} of {B_O:g} spent" in out
    study = open_study(paths, params)
    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert len(finished) == len(ran) - 1
    pruned = [t for t in finished if t.state == optuna.trial.TrialState.PRUNED]
    assert [t.user_attrs["trial_id"] for t in pruned] == [t for t, v in states.items() if v == "pruned"]
    scores = [json.loads(paths.trial(t).metrics.read_text())["score"] for t in ran if states[t] == "complete"]
    assert max(scores) > 0 and len(set(scores)) > 1, scores  # the model answers, and the settings matter
    with (paths.report / "trials.csv").open() as f:
        reference, *rows = list(csv.DictReader(f))
    assert [r["trial"] for r in rows] == ran
    assert "gen_tokens" in rows[0] and "train_tokens" not in rows[0]
    # the untuned reference of a generation campaign: the base model at the generate section's settings — the
    # baseline's configuration, sampled with the same seeds, so the same value on every instance both sampled
    untuned = json.loads(paths.untuned.metrics.read_text())
    baseline = json.loads(paths.trial("baseline").metrics.read_text())
    assert reference["trial"] == "untuned" and reference["state"] == untuned["state"] == "complete"
    assert untuned["generation"] == baseline["generation"] and untuned["cost"]["instances"] == 24
    sampled = {
        t: {(x["task"], x["doc_id"]): x["value"] for x in map(json.loads, f.read_text().splitlines())}
        for t, f in (("untuned", paths.untuned.instances), ("baseline", paths.trial("baseline").instances))
    }
    assert sampled["baseline"] and all(sampled["untuned"][k] == v for k, v in sampled["baseline"].items())
    if baseline["state"] == "complete":
        assert untuned["score"] == baseline["score"]
    assert [r["state"] for r in rows] == list(states.values())
    assert all(r["reason"].startswith(("pruned by EcoOptiGen", "pruned by eval.pruner")) for r in rows if r["reason"])
    evaluated = {
        t: (json.loads(paths.trial(t).metrics.read_text()).get("evaluation") or {}).get("instances") for t in ran
    }
    assert [r["evaluated"] for r in rows] == ["" if evaluated[t] is None else str(evaluated[t]) for t in ran]
    best = json.loads((paths.report / "best.json").read_text())
    assert best["metric"].startswith("mean success_rate of exact_match")
    assert best["artefacts"]["responses"].endswith("responses.jsonl")
    searched = [v for t, v in states.items() if t != "baseline"]
    assert best["pruned"] == searched.count("pruned") and best["inference_budget"] == BUDGET
    assert best["inference_cost"] == sum(int(r["gen_tokens"]) for r in rows) == pytest.approx(sum(costs))
    assert best["optimization_budget"] == B_O
    # the HTML report lists every searched trial with its state, cost and why it was pruned; compare counts them
    page = render(["gen"], ws)
    pruned_rows = [r for r in rows if r["state"] == "pruned"]
    assert "<h2>Trials: gen</h2>" in page and page.count("pruned by ") == len(pruned_rows)
    summary, diff = compare(["gen", "jnt"], ws)
    assert summary.set_index("campaign").loc["gen", "pruned"] == len(pruned_rows)
    assert summary.set_index("campaign").loc["gen", "untuned"] == untuned["score"]
    assert "campaign.optimization_budget" in set(diff["setting"])


def test_trace_shows_generation_settings_hashes_and_the_base_models_trial(ws: Path) -> None:
    _, manifest, states = trace(ws, "gen", "baseline")
    assert manifest["generation"]["cost"]["total_tokens"] > 0 and manifest["generation"]["seed"] is not None
    assert manifest["hashes"]["responses"]["md5"]
    assert manifest["hashes"]["responses"]["stage"] == trial_stage("gen", "baseline", "generate")
    assert states == {"data": "ok", "base_model": "ok", "responses": "ok", "metrics": "ok", "eval_inputs": "ok"}
    # `model.trial: ft@best` was recorded as the trial it named then, whose own lineage the trace carries
    assert load_params(CampaignPaths("gen", ws).params).model.trial == "ft/t000"
    source = manifest["base_model_from"]
    assert (source["campaign"], source["trial"], source["state"]) == ("ft", "t000", "complete")
    assert source["hashes"]["merged"]["md5"] and source["training"]["max_steps"] == 80


def test_joint_trials_train_then_generate_on_their_own_model(ws: Path) -> None:
    paths = CampaignPaths("jnt", ws)
    recorded = read_trials(paths)
    assert sorted(recorded) == ["t000", "t001"]
    best_json = json.loads((paths.report / "best.json").read_text())
    best = best_json["best"]["trial"]
    for trial in recorded:
        out = paths.trial(trial)
        metrics, trained = json.loads(out.metrics.read_text()), json.loads(out.train_metrics.read_text())
        assert metrics["state"] == "complete" and 0.0 <= metrics["score"] <= 1.0
        assert trained["tokens"] > 0 and (out.merged / "lit_model.pth").is_file() == (trial == best)
        n = recorded[trial]["params"]["n"]
        assert metrics["generation"]["n"] == n and metrics["generation"]["temperature"] == pytest.approx(
            recorded[trial]["params"]["temperature"]
        )
        assert all(len(json.loads(x)["responses"]) == n for x in out.responses.read_text().splitlines())
        lock = yaml.safe_load(out.lock.read_text())["stages"]  # the trial's own stages, as DVC recorded them
        deps = [d["path"] for d in lock["generate"]["deps"]]
        assert {f"campaigns/jnt/trials/{trial}/adapter", "campaigns/jnt/base_model"} <= set(deps)
        assert f"campaigns/jnt/merged/{trial}" not in deps, "sampled with the adapter merged in memory"
        assert sorted(lock) == ["generate", "train_lora"]  # a joint trial's score is its generation's
    with (paths.report / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"train_tokens", "val_loss", "gen_tokens", "params.learning_rate", "params.n"} <= set(rows[0])
    # without a baseline (`campaign.baseline: false`) the untuned reference is still recorded: the base model with
    # no adapter, sampled at the generate section's settings; its stage depends on the base model, not an adapter
    untuned = json.loads(paths.untuned.metrics.read_text())
    assert rows[0]["trial"] == "untuned" and float(rows[0]["score"]) == untuned["score"] == best_json["untuned_score"]
    params = load_params(paths.params)
    assert untuned["generation"]["temperature"] == params.generate.temperature and untuned["cost"]["instances"] == 24
    locked = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["untuned@jnt"]
    deps = {d["path"] for d in locked["deps"]}
    assert "campaigns/jnt/base_model" in deps and not any("adapter" in d for d in deps)
    assert compare(["jnt"], ws)[0].iloc[0]["untuned"] == untuned["score"]
    _, manifest, states = trace(ws, "jnt", "t001")
    assert manifest["training"]["max_steps"] == 16 and manifest["generation"]["cost"]["total_tokens"] > 0
    assert manifest["base_model_from"]["trial"] == "t000" and manifest["base_model_from"]["campaign"] == "ft"
    merged = ("merged",) if best == "t001" else ()
    assert states == dict.fromkeys(
        ("data", "base_model", "adapter", "train_metrics", *merged, "responses", "metrics", "eval_inputs"), "ok"
    )
    assert set(best_json["artefacts"]) == {"adapter", "merged", "responses", "metrics"}


# --- warm start and a training budget; compare -------------------------------------------------------------------


def test_warm_start_then_a_training_budget_stops_proposing(ws: Path, engines: Engines) -> None:
    """Warm-started from `e2e` (its pruner left out: priors carry no losses), with `campaign.stop_after.train_tokens`
    that its first trial spends: no other trial is proposed; the running totals are in trials.csv (training tokens,
    in trial order, priors left out) and the progress line (wall time and tokens)."""
    warm = declare(
        ws,
        "warm",
        campaign={
            "scheduler": engines.scheduler,
            "n_trials": 3,
            "n_init": 0,
            "baseline": False,
            "warm_start": {"campaigns": ["e2e"]},
            "stop_after": {"train_tokens": 1, "wall_seconds": 10**6},
        },
        train={"max_steps": 4, "eval_interval": 4},
    )
    out = run_ok(ws, "run", "--params", warm.name, extra_env=engines.env)
    e2e_complete = [
        t
        for t in E2E[1:]
        if json.loads((ws / f"campaigns/e2e/trials/{t}/metrics.json").read_text())["state"] == "complete"
    ]
    assert f"warm start: {len(e2e_complete)} prior observations added, 0 outside the space skipped" in out
    paths = CampaignPaths("warm", ws)
    study = open_study(paths, load_params(paths.params))
    priors = [t for t in study.trials if "warm_start_from" in t.user_attrs]
    assert sorted(t.user_attrs["warm_start_from"] for t in priors) == [f"e2e/{t}" for t in e2e_complete]
    assert all(t.user_attrs["data_hash"] for t in priors)
    reference, *rows = list(csv.DictReader((paths.report / "trials.csv").open()))
    assert reference["trial"] == "untuned" and reference["state"] == "complete"
    # the priors are the study's first trials, so the campaign's own first trial comes after them
    assert [r["trial"] for r in rows if r["state"] != "prior"] == [f"t{len(e2e_complete):03d}"]
    assert [r["state"] for r in rows].count("prior") == len(e2e_complete)
    tokens = int(float(rows[0]["train_tokens"]))  # (a float in trials.csv: the priors' rows have none)
    assert float(rows[0]["train_tokens_total"]) == tokens > 0
    assert f"stopped proposing: campaign.stop_after.train_tokens: {tokens} of 1 spent" in out
    assert f"{tokens:,} train tok)" in out
    assert "Data and pipelines are up to date." in dvc_out(ws, "status")

    done = campaign(ws, "compare", "e2e", "warm", "--html", "cmp.html")
    assert done.returncode == 0, done.stderr
    assert "campaign.warm_start.campaigns" in done.stdout and "campaign.n_trials" in done.stdout
    assert done.stdout.splitlines()[0].split()[5:8] == ["worst", "untuned", "baseline"]
    assert (ws / "cmp.html").stat().st_size > 100_000


# --- a clean clone rebuilds -------------------------------------------------------------------------------------


def test_a_clean_clone_rebuilds_one_trial_of_each_kind_and_state_byte_for_byte(ws: Path, tmp_path: Path) -> None:
    """The record is committed to git as a user would (decisions, dvc.lock, lineage, the small metrics and report
    files; artefacts stay out of git). In a clone with an empty DVC cache, `dvc repro -f` rebuilds a complete and a
    pruned fine-tuning trial (the pruned one trained to its recorded step: no study, no pruner), a complete, a
    rule-2-pruned and a Wilcoxon-pruned generation trial (on the fine-tuning trial it names, rebuilt first; the
    Wilcoxon-pruned one sampled on exactly the instances its record names, without a study), a joint trial and the
    untuned reference (which a warm worker computed: `python -m stages.untuned` writes the same bytes);
    afterwards `git status` shows nothing changed (metrics, losses, responses and dvc.lock — so every weight file's
    hash — are byte-identical) and no wall time leaks into a versioned file."""
    records = {c: read_trials(CampaignPaths(c, ws)) for c in ("e2e", "gen")}
    pruned = next(t for t in records["e2e"] if "pruned" in records["e2e"][t])
    gen_states = {
        t: json.loads((ws / f"campaigns/gen/trials/{t}/metrics.json").read_text())["state"] for t in records["gen"]
    }
    gen_pruned = next(t for t, s in gen_states.items() if s == "pruned" and "eval_pruned" not in records["gen"][t])
    wilcoxon = next(t for t in records["gen"] if "eval_pruned" in records["gen"][t])
    targets = [
        trial_stage("e2e", "t001", "score"),
        trial_stage("e2e", pruned, "score"),
        trial_stage("gen", "t000", "generate"),
        trial_stage("gen", gen_pruned, "generate"),
        trial_stage("gen", wilcoxon, "generate"),
        trial_stage("jnt", "t001", "generate"),
        "untuned@e2e",
    ]
    clone = clean_clone(ws, tmp_path / "clone")
    assert not (clone / "campaigns/e2e/trials/t001/adapter").exists()
    assert (clone / "campaigns/e2e/trials/t001/metrics.json").is_file()
    out = dvc_out(clone, "repro", "-f", *targets)
    assert f"Running stage '{trial_stage('e2e', pruned, 'train_lora')}'" in out
    assert "Running stage 'base_model@e2e'" in out and "Running stage 'untuned@e2e'" in out
    assert out.index("Running stage 'merge_lora@ft-t000'") < out.index("Running stage 'base_model@gen'")
    assert "merge_lora@e2e" not in out and "merge_lora@jnt" not in out, "a trial's score needs no merged model"
    assert git(clone, "status", "--porcelain") == "", git(clone, "diff", "--stat")
    for path in (
        f"campaigns/e2e/trials/{pruned}/adapter/lit_model.pth.lora",
        "campaigns/e2e/trials/t001/adapter/lit_model.pth.lora",
        "campaigns/ft/merged/t000/lit_model.pth",
        "campaigns/gen/trials/t000/responses.jsonl",
        f"campaigns/gen/trials/{gen_pruned}/responses.jsonl",
        f"campaigns/gen/trials/{wilcoxon}/responses.jsonl",
        f"campaigns/gen/trials/{wilcoxon}/instances.jsonl",
        "campaigns/e2e/trials/t001/instances.jsonl",
        "campaigns/e2e/untuned/instances.jsonl",
        "campaigns/jnt/trials/t001/responses.jsonl",
    ):
        assert (clone / path).read_bytes() == (ws / path).read_bytes(), path
    assert "Data and pipelines are up to date." in dvc_out(clone, "status", "--with-deps", *targets)
