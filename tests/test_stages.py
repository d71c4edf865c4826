"""The tiny model's stages, run as functions: data split, base model, LoRA training, merge and lm-eval scoring."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from hpo import cache
from hpo.checkpoint import CheckpointError, check_checkpoint
from hpo.config import load_params
from hpo.data import DataError, read_records
from hpo.layout import CampaignPaths
from hpo.search.training_pruning import recorded_stop
from stages.merge_lora import merge_lora
from stages.prepare_data import prepare_data
from stages.score import score
from stages.train_lora import train_lora

from .helpers import ROOT, make_workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> tuple[Path, CampaignPaths]:
    """The e2e campaign's data (prepare_data) and base model: the test run's tiny base, which the base_model
    stage's function built once (`tiny_base`)."""
    ws = make_workspace(tmp_path_factory.mktemp("stages") / "ws")
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    paths = CampaignPaths("e2e", ws)
    import os

    cwd = os.getcwd()
    os.chdir(ws)  # stages read relative paths, as under DVC
    try:
        counts = prepare_data(params.data, paths.data)
    finally:
        os.chdir(cwd)
    shutil.copytree(tiny_base, paths.base_model)
    assert counts == {"train": 1520, "val": 20, "eval": 60}
    # a random model scores ln(vocab) = 5.77 nats; pretraining must have taught it something
    summary = json.loads(tiny_base.with_name("tiny_base.json").read_text())
    assert summary["pretrain_val_loss"] < 0.7 * math.log(320)
    return ws, paths


def test_splits_are_disjoint_and_tasks_written(built: tuple[Path, CampaignPaths]) -> None:
    _, paths = built
    train = {r["instruction"] for r in json.loads((paths.data / "train.json").read_text())}
    val = {r["instruction"] for r in json.loads((paths.data / "val.json").read_text())}
    evaluation = [json.loads(line) for line in (paths.data / "eval.jsonl").read_text().splitlines()]
    assert not train & val and not train & {r["instruction"] for r in evaluation}
    assert all(r["choices"][r["gold"]] == r["output"] for r in evaluation)
    assert sorted(p.name for p in paths.tasks.iterdir()) == ["tinytopic.yaml", "tinytopic_gen.yaml"]


def test_base_model_is_a_litgpt_checkpoint(built: tuple[Path, CampaignPaths], tmp_path: Path) -> None:
    _, paths = built
    check_checkpoint(paths.base_model)
    broken = tmp_path / "ckpt"
    shutil.copytree(paths.base_model, broken)
    (broken / "lit_model.pth").unlink()
    (broken / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing lit_model.pth, tokenizer.json or tokenizer.model"):
        check_checkpoint(broken)


def test_train_merge_score(built: tuple[Path, CampaignPaths], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, paths = built
    monkeypatch.chdir(ws)
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    out = paths.trial("t000")
    out.dir.mkdir(parents=True)
    train = params.trial_train({"learning_rate": 0.02, "max_steps": 6, "lora_r": 4, "lora_alpha": 8})
    result = train_lora(train, Path("campaigns/e2e/base_model"), Path("campaigns/e2e/data"), out, seed=1)
    assert result["state"] == "complete" and result["tokens"] > 0
    assert sorted(p.name for p in out.adapter.glob("*.pth*")) == ["lit_model.pth.lora"]
    curve = out.loss_curve.read_text().splitlines()
    assert curve[0] == "iter,train_loss,val_loss" and len(curve) > 6

    merged = merge_lora(out.adapter, paths.base_model, out.merged)
    assert merged.is_file() and not (out.merged / "lit_model.pth.lora").exists()
    base = torch.load(paths.base_model / "lit_model.pth")
    after = torch.load(merged)
    assert set(base) == set(after)
    changed = [k for k in base if not torch.equal(base[k], after[k])]
    assert changed and all("attn" in k for k in changed), changed

    evaluation = params.eval.model_copy(update={"tasks": ["tinytopic", "tinytopic_gen"], "metric": "acc"})
    with pytest.raises(KeyError, match="reports no 'acc'"):
        score(out.merged, evaluation, paths.tasks, seed=3)
    mc = score(out.merged, params.eval, paths.tasks, seed=3)
    assert 0.0 <= mc["score"] <= 1.0
    assert mc["lm_eval"]["n_samples"] == {"tinytopic": 60}
    assert score(out.merged, params.eval, paths.tasks, seed=3)["score"] == mc["score"], "deterministic on CPU"
    gen_eval = params.eval.model_copy(update={"tasks": ["tinytopic_gen"], "metric": "exact_match", "limit": 10})
    gen = score(out.merged, gen_eval, paths.tasks, seed=3)
    assert 0.0 <= gen["tasks"]["tinytopic_gen"]["exact_match"] <= 1.0

    # A trial's stage scores its adapter on the base model, merged in memory: the same bytes as the checkpoint
    # litgpt's merge_lora wrote, for loglikelihood and for sampled generation; the cached base weights unchanged.
    def as_bytes(metrics: dict) -> str:
        return json.dumps(metrics, sort_keys=True)

    assert as_bytes(score(paths.base_model, params.eval, paths.tasks, seed=3, adapter=out.adapter)) == as_bytes(mc)
    in_memory = score(paths.base_model, gen_eval, paths.tasks, seed=3, adapter=out.adapter)
    assert as_bytes(in_memory) == as_bytes(gen)
    cached = cache.base_state(paths.base_model / "lit_model.pth")
    assert all(torch.equal(cached[k], base[k]) for k in base), "merging in memory left the cached base weights as read"
    plain = score(paths.base_model, params.eval, paths.tasks, seed=3)
    assert plain["tasks"] != mc["tasks"], "the adapter changes the scores"


def test_diverging_training_is_a_recorded_failure(built: tuple[Path, CampaignPaths], monkeypatch) -> None:
    ws, paths = built
    monkeypatch.chdir(ws)
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    out = paths.trial("t001")
    out.dir.mkdir(parents=True)
    train = params.trial_train({"learning_rate": 1e12, "max_steps": 4, "eval_interval": 2})
    result = train_lora(train, Path("campaigns/e2e/base_model"), Path("campaigns/e2e/data"), out, seed=1)
    assert result["state"] == "failed"
    assert result["reason"].startswith("diverged: non-finite loss")


def test_a_pruned_trial_is_rebuilt_from_its_recorded_step(built: tuple[Path, CampaignPaths], monkeypatch) -> None:
    """The pruner's decision is data: a trial a live pruner stopped at step 4 of 8 and the same trial stopped by its
    record (`recorded_stop`, what `dvc repro` uses) write the same bytes; both trained on the 8-step schedule."""
    ws, paths = built
    monkeypatch.chdir(ws)
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    train = params.trial_train({"learning_rate": 0.02, "max_steps": 8, "eval_interval": 2})
    asked: list[tuple[int, float]] = []

    def pruner(step: int, loss: float) -> str | None:
        asked.append((step, loss))
        return "a test pruner" if step == 4 else None

    runs = {}
    for name, stop in (("t010", pruner), ("t011", recorded_stop({"step": 4, "by": "a test pruner"})), ("t012", None)):
        out = paths.trial(name)
        out.dir.mkdir(parents=True)
        base, data = Path("campaigns/e2e/base_model"), Path("campaigns/e2e/data")
        runs[name] = (out, train_lora(train, base, data, out, 1, stop))
    (live_out, live), (rebuilt_out, rebuilt), (_, full) = runs.values()
    assert [step for step, _ in asked] == [2, 4], "asked after each interval's validation until it stopped"
    assert all(math.isfinite(loss) for _, loss in asked)
    assert live == rebuilt
    assert live["state"] == "pruned" and live["steps"] == 4
    assert live["reason"] == "pruned at step 4 of 8 by a test pruner"
    assert live["tokens"] < full["tokens"] and full["state"] == "complete" and full["steps"] == 8
    weights = "lit_model.pth.lora"
    assert (live_out.adapter / weights).read_bytes() == (rebuilt_out.adapter / weights).read_bytes()
    assert live_out.loss_curve.read_text() == rebuilt_out.loss_curve.read_text()
    # the learning rate followed the 8-step schedule: not the same as a 4-step run
    short_train = params.trial_train({"learning_rate": 0.02, "max_steps": 4, "eval_interval": 2})
    short = paths.trial("t013")
    short.dir.mkdir(parents=True)
    train_lora(short_train, Path("campaigns/e2e/base_model"), Path("campaigns/e2e/data"), short, 1)
    a, b = (torch.load(d / "lit_model.pth.lora")["model"] for d in (short.adapter, live_out.adapter))
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def test_malformed_data_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n')
    with pytest.raises(DataError, match=r"d.jsonl: line 2: not valid JSON"):
        read_records(path)
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "c", "choices": ["x", "y"]}\n')
    with pytest.raises(DataError, match=r"line 2: 'output' 'c' is not one of 'choices'"):
        read_records(path)


def test_a_users_utility_function_scores_a_generation(
    built: tuple[Path, CampaignPaths], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`generate.utility: <file>.py:<function>` in the task folder is the objective; the built-in utilities are
    still recorded beside it."""
    from hpo.config import EvalSection, GenerateSection
    from stages.generate import generate

    ws, paths = built
    (ws / "data/tasks/mine.py").write_text(
        "def at_least_half(correct, answers):\n    return sum(2 * sum(c) >= len(c) for c in correct) / len(correct)\n"
    )
    monkeypatch.chdir(ws)
    evaluation = EvalSection(tasks=["tinytopic_gen"], metric="exact_match", limit=6, batch_size=8)
    settings = GenerateSection(temperature=1.0, n=3, max_new_tokens=4, utility="mine.py:at_least_half")
    metrics, records, _, _ = generate(paths.base_model, evaluation, settings, paths.tasks, 1, 2)
    by_hand = sum(2 * sum(r["correct"] for r in x["responses"]) >= 3 for x in records) / len(records)
    assert len(records) == 6 and metrics["utility"] == "mine.py:at_least_half"
    assert metrics["score"] == metrics["tasks"]["tinytopic_gen"]["mine.py:at_least_half"] == round(by_hand, 6)
    assert set(metrics["tasks"]["tinytopic_gen"]) == {
        "success_rate",
        "pass_at_n",
        "mean_correct",
        "majority_vote",
        "mine.py:at_least_half",
    }


def test_a_joint_trial_whose_training_diverged_is_recorded_failed(
    built: tuple[Path, CampaignPaths], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its generate stage has no model to sample from: it records the training's failure, as score does."""
    import yaml

    from hpo.files import write_yaml
    from stages import generate

    ws, _ = built
    monkeypatch.chdir(ws)
    paths = CampaignPaths("jdiv", ws)
    raw = yaml.safe_load((ROOT / "params.joint.yaml").read_text())
    raw["campaign"]["name"] = "jdiv"
    write_yaml(paths.params, raw)
    write_yaml(paths.trials, {"t000": {"params": {"learning_rate": 1e12, "n": 2}, "seeds": {"eval": 1, "generate": 2}}})
    paths.trial("t000").dir.mkdir(parents=True)
    reason = "diverged: non-finite loss at step 2"
    paths.trial("t000").train_metrics.write_text(json.dumps({"state": "failed", "reason": reason}))
    parsed: list[Path] = []
    load = generate.load_params
    monkeypatch.setattr(generate, "load_params", lambda path: parsed.append(path) or load(path))
    result = generate.run(paths, "t000")  # as its CLI runs it: the stage parses the params file, once
    assert result == {"state": "failed", "reason": reason, "score": None}
    assert json.loads(paths.trial("t000").metrics.read_text()) == result
    assert paths.trial("t000").responses.read_text() == ""
    assert parsed == [paths.params]
    params = load(paths.params)
    assert generate.run(paths, "t000", params=params, pruners=None) == result  # as a worker calls it: no parse
    assert parsed == [paths.params]


def test_the_untuned_reference_is_the_base_model_scored_as_a_trial_is(
    built: tuple[Path, CampaignPaths], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The untuned stage scores the base model with no adapter and every trial's eval seed: the score stage's
    metrics of the base model alone, each instance's value in `instances.jsonl` (what pairs with a trial's); with
    `eval.pruner`, in the campaign's order and chunks, never stopped (the reference is not a candidate)."""
    from hpo.config import Params
    from hpo.files import write_yaml
    from stages.untuned import untuned

    ws, paths = built
    monkeypatch.chdir(ws)
    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    write_yaml(paths.params, params.model_dump(mode="json"))
    metrics = untuned(paths)
    seed = params.seeds()["eval"]
    alone = score(checkpoint_dir=paths.base_model, evaluation=params.eval, task_dir=paths.tasks, seed=seed)
    assert {k: v for k, v in metrics.items() if k not in ("reference", "threads")} == alone
    assert metrics["threads"] == params.trial_threads() and metrics["reference"].startswith("the base model without")
    assert json.loads(paths.untuned.metrics.read_text()) == metrics

    def instances() -> dict[tuple[str, int], float]:
        rows = map(json.loads, paths.untuned.instances.read_text().splitlines())
        return {(x["task"], x["doc_id"]): x["value"] for x in rows}

    values = instances()
    assert len(values) == 60 and sum(values.values()) / 60 == pytest.approx(metrics["score"], abs=1e-6)

    raw = params.model_dump(mode="json")
    raw["eval"]["pruner"] = {"name": "wilcoxon", "chunk": 10}
    write_yaml(paths.params, Params.model_validate(raw).model_dump(mode="json"))
    chunked = untuned(paths, params=load_params(paths.params))  # as a worker calls it: it takes no pruners
    assert chunked["state"] == "complete" and chunked["evaluation"] == {"instances": 60, "of": 60, "saved": 0.0}
    assert chunked["score"] == metrics["score"] and instances() == values, "instance for instance the same"
