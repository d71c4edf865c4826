"""Peer test: our lm-eval `LM` over a litgpt checkpoint (`hpo.evaluation.LitGPTLM`) computes what lm-eval's own
Hugging Face backend (`HFLM`) computes from the same weights in transformers' format — every log-likelihood
within 1e-4 (float32 sums in another order differ by ~1e-5) and every greedy response identical.

Both run through `hpo.evaluation.evaluate` (lm-eval's `simple_evaluate`, as the score and generate stages run it)
on three tasks written here: a multiple-choice task whose context ends in a space and whose continuations are
several tokens (lm-eval moves the space into the continuation and splits the tokens of the whole), with few-shot
examples; a generate_until task (greedy, several tokens); both again with `eval.chat_template` (lm-eval renders
each prompt, few-shot turns included, with the model's chat template; the rendered text starts with BOS, which
neither encodes twice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from hpo.config import EvalSection
from hpo.evaluation import LitGPTLM, evaluate

from .helpers import ROOT

TOLERANCE = 1e-4
TOPICS = {  # TinyTopic's topics as continuations of several tokens
    " sports": "sports and games",
    " food": "food and cooking",
    " weather": "weather and the sky",
    " music": "music and songs",
}


def write_tasks(folder: Path) -> Path:
    """The peer tasks' YAMLs and data (TinyTopic's records) in `folder`; returns the task folder."""
    records = [json.loads(line) for line in (ROOT / "data" / "tinytopic.jsonl").read_text().splitlines()]
    choices = list(TOPICS.values())
    data = folder / "data"
    data.mkdir(parents=True)
    for split, rows in (("train", records[:20]), ("test", records[100:140])):
        with (data / f"{split}.jsonl").open("w") as f:
            for r in rows:
                text = r["instruction"].removesuffix("\nTopic:")
                f.write(json.dumps({"text": text, "gold": choices.index(TOPICS[r["output"]])}) + "\n")
    dataset = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str(data / "train.jsonl"), "test": str(data / "test.jsonl")}},
        "training_split": "train",
        "fewshot_split": "train",
        "test_split": "test",
        "metadata": {"version": 1.0},
    }
    tasks = {
        "peer_mc": {
            **dataset,
            "output_type": "multiple_choice",
            "doc_to_text": "{{text}}\nThe topic is ",  # ends in a space
            "doc_to_choice": choices,
            "doc_to_target": "{{gold}}",
            "target_delimiter": "",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        },
        "peer_gen": {
            **dataset,
            "output_type": "generate_until",
            "doc_to_text": "{{text}}\nWhat is the topic of this text? Answer in a few words.",
            "doc_to_target": "{{gold}}",
            "generation_kwargs": {"until": ["\n\n"], "max_gen_toks": 16, "do_sample": False},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        },
    }
    out = folder / "tasks"
    out.mkdir()
    for name, task in tasks.items():
        (out / f"{name}.yaml").write_text(json.dumps({"task": name, **task}, indent=1))  # JSON is YAML
    return out


def responses(lm: Any, task_dir: Path, chat_template: bool, num_fewshot: int, limit: int) -> dict[tuple, Any]:
    """Each request's context and result, by (task, doc_id, request index): (log-likelihood, greedy) or the
    response."""
    evaluation = EvalSection(
        tasks=["peer_mc", "peer_gen"], limit=limit, num_fewshot=num_fewshot, chat_template=chat_template
    )
    results, _, _ = evaluate(lm, evaluation, task_dir, seed=1234, log_samples=True)
    out = {}
    for task, samples in results["samples"].items():
        for sample in samples:
            for i, resp in enumerate(sample["resps"]):
                out[(task, sample["doc_id"], i)] = (sample["arguments"][i][0], resp[0])  # (context, result)
    return out


def assert_agree(ours: dict[tuple, Any], hf: dict[tuple, Any]) -> None:
    assert ours.keys() == hf.keys() and ours
    for key in ours:
        (args, mine), (their_args, theirs) = ours[key], hf[key]
        assert args == their_args, key  # the same prompt (chat-templated alike)
        if isinstance(mine, str):
            assert mine == theirs, (key, args)
        else:
            assert abs(mine[0] - theirs[0]) <= TOLERANCE, (key, args, mine, theirs)


def check_peer(ours: Any, hf: Any, task_dir: Path, chat_template: bool, limit: int) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert_agree(
            responses(ours, task_dir, chat_template, num_fewshot=2, limit=limit),
            responses(hf, task_dir, chat_template, num_fewshot=2, limit=limit),
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_lms(real_model: Any) -> tuple[Any, Any]:
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(2)
    ours = LitGPTLM(real_model.lit, batch_size=8, generation_batch_size=8, chat_template=True)
    hf = HFLM(pretrained=str(real_model.hf), device="cpu", dtype="float32", batch_size=8)
    return ours, hf


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("chat_template", [False, True], ids=["plain", "chat"])
def test_real_model_agrees_with_hf(real_lms: tuple[Any, Any], tmp_path: Path, chat_template: bool) -> None:
    ours, hf = real_lms
    check_peer(ours, hf, write_tasks(tmp_path), chat_template, limit=6)


@pytest.mark.real
@pytest.mark.slow
def test_real_model_chat_prompt_encoding(real_lms: tuple[Any, Any]) -> None:
    """A chat-templated prompt starts with BOS: encoded once, as HFLM encodes it; a plain one gets BOS first."""
    ours, hf = real_lms
    prompt = ours.apply_chat_template([{"role": "user", "content": "Hi there"}])
    assert prompt == hf.apply_chat_template([{"role": "user", "content": "Hi there"}])
    assert ours.tok_encode(prompt) == hf.tok_encode(prompt) and ours.tok_encode(prompt).count(ours.prefix_token_id) > 0
    assert ours.tok_encode(prompt)[:2] != [ours.prefix_token_id] * 2
    assert ours.tok_encode("Hi there") == hf.tok_encode("Hi there")
    assert ours.tokenizer_name


def test_chat_template_needs_a_template(tiny_lit: Path) -> None:
    with pytest.raises(ValueError, match="eval.chat_template: the tokenizer in .* has no chat template"):
        LitGPTLM(tiny_lit, batch_size=4, chat_template=True)


@pytest.fixture(scope="module")
def tiny_lit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny litgpt checkpoint (the tiny model's architecture, randomly initialised, its BPE tokenizer)."""
    from hpo.config import TinyModel
    from stages.base_model import build_tiny

    out = tmp_path_factory.mktemp("tiny_lit")
    lines = (ROOT / "data" / "tinytopic_corpus.txt").read_text().splitlines()[:400]
    build_tiny(TinyModel(n_layer=2, n_head=2, n_embd=32, intermediate_size=64, vocab_size=320), lines, out, 0)
    return out


def test_tiny_model_agrees_with_hf(tiny_lit: Path, tmp_path: Path) -> None:
    """The same peer check on the tiny model (fast), exported to transformers' format by `hpo.export`.

    TODO: hpo/export.py (`export_hf`) is being written alongside; until it is importable this test is skipped.
    """
    try:
        from hpo.export import export_hf
    except ImportError:
        pytest.skip("TODO: needs hpo.export.export_hf")
    from lm_eval.models.huggingface import HFLM

    folder = export_hf(tiny_lit, tmp_path / "hf")
    ours = LitGPTLM(tiny_lit, batch_size=8, generation_batch_size=8)
    hf = HFLM(pretrained=str(folder), device="cpu", dtype="float32", batch_size=8)
    check_peer(ours, hf, write_tasks(tmp_path / "peer"), chat_template=False, limit=6)
