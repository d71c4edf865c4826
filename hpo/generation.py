"""Seeded, batched, KV-cached sampling from a litgpt `GPT`: the generation every generation trial runs.

litgpt's own `generate` samples one sequence (`sample()` reads `logits[0, -1]`) and its `batched_generate_fn`
needs prompts of one length with no per-sequence seed. Here rows of one batch are prompts of the same length
(the n responses of one instance always are; instances of equal length share a batch too); the prompt is
prefilled once per row into litgpt's KV cache and every row then advances one token per step. Each row draws its
tokens from a `torch.Generator` of its own, seeded by the caller (per campaign seed, trial, instance and response),
so a response does not depend on which other rows shared its batch: the same seeds give byte-identical text on CPU
whatever the batch size (checked by tests/test_generation.py).

What a row's next-token distribution goes through, in this order: repetition penalty (Hugging Face's: a logit of
a token already in the prompt or response is divided by the penalty when positive, multiplied when negative),
presence and frequency penalties (OpenAI's: minus `presence` once a token occurred in the response, minus
`frequency` per occurrence), then temperature 0 → greedy (argmax); otherwise division by the temperature, top-k,
top-p (litgpt's `sample_top_p`), softmax and one draw with the row's generator.

A response ends at the end-of-sequence token, at the first stop string (matched on the decoded text, so stops of
several tokens work; the text is cut before it) or after `max_new_tokens` tokens. `tokens` counts what was
sampled, stop tokens included, as an API bills it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import torch


@dataclass(frozen=True)
class Sampling:
    """How responses are sampled (the generation hyperparameters of a trial)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            ("temperature", self.temperature >= 0, "a number >= 0 (0: greedy)"),
            ("top_p", 0 < self.top_p <= 1, "a number in (0, 1]"),
            ("top_k", self.top_k is None or self.top_k >= 1, "an integer >= 1, or null for no top-k"),
            ("max_new_tokens", self.max_new_tokens >= 1, "an integer >= 1"),
            ("repetition_penalty", self.repetition_penalty > 0, "a number > 0 (1: none)"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ValueError(f"{key}: got {getattr(self, key)!r}; expected {expected}")
        if any(not s for s in self.stop):
            raise ValueError(f"stop: got {list(self.stop)!r}; expected non-empty strings")


@dataclass(frozen=True)
class Completion:
    """One sampled response."""

    text: str
    tokens: int  # sampled tokens, the stop sequence's included
    finish: Literal["stop", "eos", "length"]
    token_ids: list[int] = field(repr=False, default_factory=list)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    sampling: Sampling,
    seeds: list[int],
    batch_size: int = 16,
) -> list[Completion]:
    """Samples one response per prompt.

    Args:
        model: a litgpt `GPT` in eval mode (its `max_seq_length` at least the longest prompt + max_new_tokens).
        tokenizer: its litgpt `Tokenizer` (`decode`, `eos_id`).
        prompts: token ids per row; a prompt repeated n times gives n responses.
        sampling: the generation settings.
        seeds: one seed per row, for that row's generator.
        batch_size: rows computed together (rows of one prompt length only).

    Returns:
        The responses, in the order of `prompts`.
    """
    if len(seeds) != len(prompts):
        raise ValueError(f"seeds: got {len(seeds)} for {len(prompts)} prompts; expected one per prompt")
    longest = max((len(p) for p in prompts), default=0)
    if longest + sampling.max_new_tokens > model.max_seq_length:
        raise ValueError(
            f"max_new_tokens: a prompt of {longest} tokens + {sampling.max_new_tokens} new tokens exceeds the "
            f"model's context of {model.max_seq_length} tokens; shorten the prompt or lower max_new_tokens"
        )
    by_length: dict[int, list[int]] = defaultdict(list)
    for row, prompt in enumerate(prompts):
        by_length[len(prompt)].append(row)
    out: list[Completion | None] = [None] * len(prompts)
    for rows in by_length.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            for row, completion in zip(
                chunk,
                _batch(model, tokenizer, [prompts[r] for r in chunk], sampling, [seeds[r] for r in chunk]),
                strict=True,
            ):
                out[row] = completion
    return [c for c in out if c is not None]


@torch.inference_mode()
def _batch(
    model: Any, tokenizer: Any, prompts: list[list[int]], sampling: Sampling, seeds: list[int]
) -> list[Completion]:
    device = next(model.parameters()).device
    rows, length = len(prompts), len(prompts[0])
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    model.set_kv_cache(batch_size=rows, device=device)
    try:
        x = torch.tensor(prompts, dtype=torch.long, device=device)
        input_pos = torch.arange(0, length, device=device, dtype=torch.int64)
        generated: list[list[int]] = [[] for _ in range(rows)]
        done: list[Completion | None] = [None] * rows
        for step in range(sampling.max_new_tokens):
            logits = model(x, input_pos, input_pos_maxp1=length + step)[:, -1].float()
            next_ids = []
            for r in range(rows):
                token = (
                    0 if done[r] is not None else _sample(logits[r], prompts[r], generated[r], sampling, generators[r])
                )
                next_ids.append(token)
                if done[r] is None:
                    done[r] = _finished(
                        tokenizer, generated[r], token, sampling, last=step + 1 == sampling.max_new_tokens
                    )
            if all(d is not None for d in done):
                break
            x = torch.tensor(next_ids, dtype=torch.long, device=device).view(rows, 1)
            input_pos = torch.tensor([length + step], device=device, dtype=torch.int64)
    finally:
        model.clear_kv_cache()
    return [d for d in done if d is not None]


def _sample(
    logits: torch.Tensor, prompt: list[int], generated: list[int], s: Sampling, generator: torch.Generator
) -> int:
    if s.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(prompt) | set(generated)), dtype=torch.long, device=logits.device)
        picked = logits[seen]
        logits[seen] = torch.where(picked > 0, picked / s.repetition_penalty, picked * s.repetition_penalty)
    if (s.presence_penalty or s.frequency_penalty) and generated:
        counts = Counter(generated)
        ids = torch.tensor(list(counts), dtype=torch.long, device=logits.device)
        times = torch.tensor(list(counts.values()), dtype=logits.dtype, device=logits.device)
        logits[ids] -= s.frequency_penalty * times + s.presence_penalty
    if s.temperature == 0:
        return int(torch.argmax(logits))
    from litgpt.generate.base import sample_top_p

    logits = logits / s.temperature
    if s.top_k is not None and s.top_k < logits.size(-1):
        values, indices = torch.topk(logits, s.top_k)
        logits = torch.full_like(logits, float("-inf")).scatter_(-1, indices, values)
    if s.top_p < 1.0:
        logits = sample_top_p(logits, s.top_p)
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def _finished(tokenizer: Any, generated: list[int], token: int, s: Sampling, last: bool) -> Completion | None:
    """Appends `token` to the row's response; the completion once the row is finished, else None."""
    if token == tokenizer.eos_id:
        return Completion(_decode(tokenizer, generated), len(generated) + 1, "eos", list(generated))
    generated.append(token)
    if s.stop:
        text = _decode(tokenizer, generated)
        cuts = [text.find(stop) for stop in s.stop if stop in text]
        if cuts:
            return Completion(text[: min(cuts)], len(generated), "stop", list(generated))
    if last:
        return Completion(_decode(tokenizer, generated), len(generated), "length", list(generated))
    return None


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(torch.tensor(ids, dtype=torch.long))) if ids else ""
