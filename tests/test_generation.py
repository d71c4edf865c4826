"""Seeded batched generation (hpo.generation) on a real litgpt model: the tiny model's architecture, randomly
initialised (sampling from it gives varied text, which is what these checks need), with its BPE tokenizer."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hpo.config import TinyModel
from hpo.generation import Completion, Sampling, generate
from stages.base_model import build_tiny

from .helpers import ROOT


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from litgpt import Config, Tokenizer
    from litgpt.model import GPT

    out = tmp_path_factory.mktemp("tiny")
    lines = (ROOT / "data" / "tinytopic_corpus.txt").read_text().splitlines()[:400]
    build_tiny(TinyModel(n_layer=2, n_head=2, n_embd=32, intermediate_size=64, vocab_size=320), lines, out, 0)
    model = GPT(Config.from_file(out / "model_config.yaml"))
    model.load_state_dict(torch.load(out / "lit_model.pth", weights_only=True))
    model.eval()
    return model, Tokenizer(out)


def encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, bos=True).tolist()


PROMPTS = ["Text: the market rose", "Text: the team won the final", "Text: a new chip", "Text: rain"]


def rows(tokenizer: Any, n: int) -> tuple[list[list[int]], list[int]]:
    """Each prompt n times, with one seed per (instance, response)."""
    prompts = [encode(tokenizer, p) for p in PROMPTS for _ in range(n)]
    seeds = [1000 * i + j for i in range(len(PROMPTS)) for j in range(n)]
    return prompts, seeds


def test_same_seeds_same_text_whatever_the_batch_size(lm: tuple[Any, Any]) -> None:
    model, tokenizer = lm
    prompts, seeds = rows(tokenizer, 3)
    sampling = Sampling(temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=12)
    runs = [generate(model, tokenizer, prompts, sampling, seeds, batch_size=b) for b in (1, 2, 16)]
    assert runs[0] == runs[1] == runs[2]
    texts = [c.text for c in runs[0]]
    assert len(set(texts)) >= 8  # 12 responses drawn with 12 seeds differ
    shuffled = list(reversed(range(len(prompts))))
    again = generate(model, tokenizer, [prompts[i] for i in shuffled], sampling, [seeds[i] for i in shuffled])
    assert [c.text for c in reversed(again)] == texts  # a response depends on its seed, not its neighbours
    other = generate(model, tokenizer, prompts, sampling, [s + 1 for s in seeds])
    assert [c.text for c in other] != texts


def test_greedy_equals_litgpts_generate(lm: tuple[Any, Any]) -> None:
    from litgpt.generate.base import generate as litgpt_generate

    model, tokenizer = lm
    prompts, seeds = rows(tokenizer, 2)
    ours = generate(model, tokenizer, prompts, Sampling(temperature=0.0, max_new_tokens=10), seeds, batch_size=8)
    for prompt, completion in zip(prompts, ours, strict=True):
        model.set_kv_cache(batch_size=1)
        ids = litgpt_generate(
            model,
            torch.tensor(prompt),
            len(prompt) + 10,
            temperature=0.0,
            eos_id=tokenizer.eos_id,
            include_prompt=False,
        )
        model.clear_kv_cache()
        expected = [int(t) for t in ids if int(t) != tokenizer.eos_id]
        assert completion.token_ids == expected
    # top_k 1 is greedy whatever the temperature
    top1 = generate(model, tokenizer, prompts, Sampling(temperature=2.0, top_k=1, max_new_tokens=10), seeds)
    assert [c.token_ids for c in top1] == [c.token_ids for c in ours]


def test_stop_strings_and_token_counts(lm: tuple[Any, Any]) -> None:
    model, tokenizer = lm
    prompts, seeds = rows(tokenizer, 4)
    free = generate(model, tokenizer, prompts, Sampling(temperature=1.0, max_new_tokens=16), seeds)
    assert all(c.finish in ("eos", "length") for c in free)
    assert all(c.tokens == 16 for c in free if c.finish == "length")
    # a stop string taken from one free response's text: that response ends before it
    victim = next(c for c in free if len(c.text) > 6)
    stop = victim.text[3:6]
    stopped = generate(model, tokenizer, prompts, Sampling(temperature=1.0, max_new_tokens=16, stop=(stop,)), seeds)
    for before, after in zip(free, stopped, strict=True):
        assert stop not in after.text
        if stop in before.text:
            assert after.finish == "stop" and before.text.startswith(after.text)
            assert after.tokens <= before.tokens
        else:
            assert after == before


def test_penalties_change_the_distribution(lm: tuple[Any, Any]) -> None:
    model, tokenizer = lm
    prompts, seeds = rows(tokenizer, 2)
    greedy = generate(model, tokenizer, prompts, Sampling(max_new_tokens=16), seeds)

    def repeats(completions: list[Completion]) -> int:
        return sum(len(c.token_ids) - len(set(c.token_ids)) for c in completions)

    for penalised in (
        Sampling(max_new_tokens=16, repetition_penalty=3.0),
        Sampling(max_new_tokens=16, presence_penalty=5.0),
        Sampling(max_new_tokens=16, frequency_penalty=5.0),
    ):
        out = generate(model, tokenizer, prompts, penalised, seeds)
        assert repeats(out) < repeats(greedy), penalised


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -0.5}, "temperature: got -0.5; expected a number >= 0"),
        ({"top_k": 0}, "top_k: got 0; expected an integer >= 1"),
        ({"top_p": 0.0}, r"top_p: got 0.0; expected a number in \(0, 1\]"),
        ({"max_new_tokens": 0}, "max_new_tokens: got 0"),
        ({"stop": ("",)}, "stop: got"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sampling(**kwargs)


def test_prompt_too_long_for_the_context(lm: tuple[Any, Any]) -> None:
    model, tokenizer = lm
    long = encode(tokenizer, " ".join(["word"] * 200))[: model.max_seq_length - 4]
    with pytest.raises(ValueError, match="max_new_tokens: a prompt of 60 tokens \\+ 8 new tokens exceeds"):
        generate(model, tokenizer, [long], Sampling(max_new_tokens=8), [0])


def test_extra_eos_ids_end_a_response(lm: tuple[Any, Any]) -> None:
    """A token of `eos_ids` (a Hugging Face checkpoint's generation_config.json's) ends a response as EOS does."""
    model, tokenizer = lm
    prompts, seeds = rows(tokenizer, 1)
    free = generate(model, tokenizer, prompts, Sampling(max_new_tokens=8), seeds)
    victim = next(c for c in free if len(c.token_ids) >= 3 and c.token_ids[2] not in c.token_ids[:2])
    ended = generate(model, tokenizer, prompts, Sampling(max_new_tokens=8), seeds, eos_ids=(victim.token_ids[2],))
    for before, after in zip(free, ended, strict=True):
        if victim.token_ids[2] in before.token_ids:
            cut = before.token_ids.index(victim.token_ids[2])
            assert after.finish == "eos" and after.token_ids == before.token_ids[:cut] and after.tokens == cut + 1
        else:
            assert after == before


def test_logits_at_are_the_models_logits_there(lm: tuple[Any, Any]) -> None:
    from hpo.generation import logits_at

    model, _ = lm
    idx = torch.randint(0, 300, (3, 9))
    where = (torch.tensor([0, 0, 2, 1]), torch.tensor([8, 3, 0, 5]))
    with torch.inference_mode():
        full = model(idx)
        assert torch.allclose(logits_at(model, idx, where), full[where], atol=1e-5)
    assert isinstance(model.lm_head, torch.nn.Linear)  # put back


def test_a_shared_prefix_computed_once_gives_the_same_text(
    lm: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prefix all prompts of a batch share ("Text:" here) computed once and copied to every row's cache: the
    responses are those each prompt gives alone."""
    from hpo import generation

    model, tokenizer = lm
    prompts, seeds = rows(tokenizer, 2)
    sampling = Sampling(temperature=1.0, top_k=50, max_new_tokens=10)
    alone = generate(model, tokenizer, prompts, sampling, seeds, batch_size=1)
    shared: list[int] = []
    common_prefix = generation._common_prefix
    monkeypatch.setattr(generation, "SHARED_PREFIX_MIN_SAVING", 0)
    monkeypatch.setattr(generation, "_common_prefix", lambda *a: shared.append(common_prefix(*a)) or shared[-1])
    assert generate(model, tokenizer, prompts, sampling, seeds, batch_size=16) == alone
    assert shared == [len(encode(tokenizer, "Text:"))]
