"""Seeded, batched, KV-cached sampling from a litgpt `GPT`: the generation every generation trial runs.

litgpt's own `generate` samples one sequence (`sample()` reads `logits[0, -1]`) and its `batched_generate_fn`
needs prompts of one length with no per-sequence seed. Here a batch's rows may be prompts of different lengths:
rows are sorted by length (longest first, as lm-eval's `Collator` does: little padding) and each row keeps its own
positions — its prompt at positions 0..len-1, right-padded to the batch's longest, its n-th new token at position
len+n-1 (litgpt's batched `input_pos`) — so the causal mask hides a row's padding from it, its padding's KV-cache
entries are overwritten by its own tokens before it attends to them, and its rotary positions are those it has
alone (left padding would shift them). Work no response needs is skipped: a prompt several rows share (an
instance's n responses) is computed once and its KV-cache entries copied to those rows, and so is a long prefix all
of a batch's prompts share (a chat template's system turn, an instruction template); the output layer is applied
at each prompt's last token only; a row that finished leaves the batch. A model with sliding-window attention (a
ring-buffer KV cache, which per-row positions do not fit) batches prompts of one length only and shares no prefix.

Each row draws its tokens from a `torch.Generator` of its own, seeded by the caller (per campaign seed, trial,
instance and response), so a response does not depend on which rows shared its batch — up to float rounding: a
matrix product on CPU may sum in another order for another number of rows (MKL: ~1e-5 on SmolLM2-135M's logits,
as with the batches of one prompt length before), and a shorter row's attention also sums over masked padding.
The same seeds thus give byte-identical text on CPU whatever the batch size unless two tokens' scores tie within
that rounding (checked by tests/test_generation.py).

What a row's next-token distribution goes through, in this order: repetition penalty (Hugging Face's: a logit of
a token already in the prompt or response is divided by the penalty when positive, multiplied when negative),
presence and frequency penalties (OpenAI's: minus `presence` once a token occurred in the response, minus
`frequency` per occurrence), then temperature 0 → greedy (argmax); otherwise division by the temperature, top-k,
top-p (litgpt's `sample_top_p`), softmax and one draw with the row's generator.

A response ends at an end-of-sequence token (the tokenizer's, or one of `eos_ids`), at the first stop string
(matched on the decoded text, so stops of several tokens work; the text is cut before it) or after
`max_new_tokens` tokens. `tokens` counts what was sampled, stop tokens included, as an API bills it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from litgpt import Tokenizer
    from litgpt.model import GPT


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
    model: GPT,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    sampling: Sampling,
    seeds: list[int],
    batch_size: int = 16,
    eos_ids: tuple[int, ...] = (),
) -> list[Completion]:
    """Samples one response per prompt.

    Args:
        model: a litgpt `GPT` in eval mode (its `max_seq_length` at least the longest prompt + max_new_tokens).
        tokenizer: its litgpt `Tokenizer` (`decode`, `eos_id`).
        prompts: token ids per row; a prompt repeated n times gives n responses.
        sampling: the generation settings.
        seeds: one seed per row, for that row's generator.
        batch_size: rows computed together.
        eos_ids: tokens that end a response as the tokenizer's end-of-sequence token does (e.g. those a Hugging
            Face checkpoint's generation_config.json names, where transformers' `generate` stops).

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
    # longest first (stable: equal prompts stay in order); a ring-buffer KV cache takes one length per batch
    order = sorted(range(len(prompts)), key=lambda r: -len(prompts[r]))
    mixed = not _ring_buffer(model)
    batches: list[list[int]] = []
    for row in order:
        if batches and len(batches[-1]) < batch_size and (mixed or len(prompts[batches[-1][0]]) == len(prompts[row])):
            batches[-1].append(row)
        else:
            batches.append([row])
    eos = {tokenizer.eos_id, *eos_ids} - {None}
    out: list[Completion | None] = [None] * len(prompts)
    for rows in batches:
        for row, completion in zip(
            rows,
            _batch(model, tokenizer, [prompts[r] for r in rows], sampling, [seeds[r] for r in rows], eos),
            strict=True,
        ):
            out[row] = completion
    return [c for c in out if c is not None]


def logits_at(model: GPT, idx: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor], **kwargs: Any) -> torch.Tensor:
    """`model(idx, **kwargs)`'s logits at the (row, position) pairs `where` only, shape (len(where[0]), vocab).

    The output layer (a vocabulary-wide matrix product, ~20% of SmolLM2-135M's compute) is applied to the chosen
    positions only — a response needs the last prompt position's, a score its continuation's — instead of to every
    position of every row: litgpt's `lm_head` is swapped for the duration of the call (softcapping, applied after
    it, is elementwise)."""
    head = model.lm_head
    model.lm_head = _At(head, where)
    try:
        return model(idx, **kwargs)
    finally:
        model.lm_head = head


class _At(torch.nn.Module):
    def __init__(self, head: torch.nn.Module, where: tuple[torch.Tensor, torch.Tensor]) -> None:
        super().__init__()
        self.head, self.where = head, where

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[self.where])


# A forward reads every weight once, whatever it computes: on SmolLM2-135M (2 CPU threads) a one-row forward of a
# few tokens cost about as much as 50 more prompt tokens in a batch's forward. A prefix the batch's prompts share is
# computed once, in a forward of its own, only where that saves more prompt tokens than this.
SHARED_PREFIX_MIN_SAVING = 64


@torch.inference_mode()
def _batch(
    model: GPT, tokenizer: Tokenizer, prompts: list[list[int]], sampling: Sampling, seeds: list[int], eos: set[int]
) -> list[Completion]:
    device = next(model.parameters()).device
    rows, width = len(prompts), max(len(p) for p in prompts)
    lengths = torch.tensor([len(p) for p in prompts], dtype=torch.int64, device=device)
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    # a prompt several rows share (an instance's n responses) is computed once, its cache entries then copied
    unique: dict[tuple[int, ...], int] = {}
    of_row = torch.tensor([unique.setdefault(tuple(p), len(unique)) for p in prompts], device=device)
    # so is the prefix all prompts share (a chat template's system turn, an instruction), where that pays; each
    # prompt keeps a token of its own after it, where its first response token's logits are read
    shared = _common_prefix(list(unique), min(len(p) for p in unique) - 1)
    if shared * (len(unique) - 1) < SHARED_PREFIX_MIN_SAVING or _ring_buffer(model):
        shared = 0
    # a cache as long as this batch needs (litgpt's default, the model's whole context, allocates and zeroes
    # ~377 MB per row on SmolLM2-135M: measured ~1 s per batch on 2 CPU cores)
    model.set_kv_cache(
        batch_size=len(unique),
        max_seq_length=width + sampling.max_new_tokens,
        device=device,
        dtype=next(model.parameters()).dtype,
    )
    try:
        x = torch.zeros((len(unique), width), dtype=torch.long, device=device)  # right-padded
        for u, prompt in enumerate(unique):
            x[u, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        if shared:  # into the first row's cache entries (litgpt writes a batch of one there), then copied
            nowhere = (torch.zeros(0, dtype=torch.int64, device=device),) * 2
            logits_at(
                model, x[:1, :shared], nowhere, input_pos=torch.arange(shared, device=device), input_pos_maxp1=shared
            )
            for block in model.transformer.h:
                cache = block.attn.kv_cache
                cache.k[1:, :, :shared], cache.v[1:, :, :shared] = cache.k[:1, :, :shared], cache.v[:1, :, :shared]
        # the prompts (after the shared prefix): the logits at each prompt's last token only, one row per response
        last = (
            torch.arange(len(unique), device=device),
            torch.tensor([len(p) - 1 - shared for p in unique], device=device),
        )
        input_pos = torch.arange(shared, width, device=device, dtype=torch.int64)
        logits = logits_at(model, x[:, shared:], last, input_pos=input_pos, input_pos_maxp1=width)[of_row].float()
        if len(unique) < rows:
            _keep_rows(model, of_row)
        generated: list[list[int]] = [[] for _ in range(rows)]
        done: list[Completion | None] = [None] * rows
        active = list(range(rows))  # the rows still sampling: those of `logits` and of the KV cache, in order
        for step in range(sampling.max_new_tokens):
            next_ids = []
            for i, r in enumerate(active):
                token = _sample(logits[i], prompts[r], generated[r], sampling, generators[r])
                next_ids.append(token)
                done[r] = _finished(
                    tokenizer, generated[r], token, sampling, eos, last=step + 1 == sampling.max_new_tokens
                )
            going = [i for i, r in enumerate(active) if done[r] is None]
            if not going:
                break
            if len(going) < len(active):  # a finished row leaves the batch: no more forwards for it
                _keep_rows(model, torch.tensor(going, device=device))
                active = [active[i] for i in going]
                next_ids = [next_ids[i] for i in going]
            # row r's new token goes to position len(prompt r) + step: a batched input_pos of shape (rows, 1), or
            # one position for all when the prompts are of one length (litgpt then writes the cache in one copy)
            x = torch.tensor(next_ids, dtype=torch.long, device=device).view(-1, 1)
            here = lengths[active] + step
            input_pos = here.view(-1, 1) if bool((here != here[0]).any()) else here[:1]
            logits = model(x, input_pos, input_pos_maxp1=int(here.max()) + 1)[:, -1].float()
    finally:
        model.clear_kv_cache()
    return [d for d in done if d is not None]


def _ring_buffer(model: GPT) -> bool:
    """Whether some layer attends over a sliding window (litgpt's KV cache is then a ring buffer)."""
    return any(getattr(block.attn, "apply_sliding_window_attention", False) for block in model.transformer.h)


def _common_prefix(prompts: list[tuple[int, ...]], at_most: int) -> int:
    """How many first tokens all `prompts` share (at most `at_most`)."""
    n = 0
    while n < at_most and all(p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


def _keep_rows(model: GPT, index: torch.Tensor) -> None:
    """Makes row i of every layer's KV cache what row index[i] was."""
    for block in model.transformer.h:
        block.attn.kv_cache.k = block.attn.kv_cache.k[index]
        block.attn.kv_cache.v = block.attn.kv_cache.v[index]


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


def _finished(
    tokenizer: Tokenizer, generated: list[int], token: int, s: Sampling, eos: set[int], last: bool
) -> Completion | None:
    """Appends `token` to the row's response; the completion once the row is finished, else None."""
    if token in eos:
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


def _decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    return str(tokenizer.decode(torch.tensor(ids, dtype=torch.long))) if ids else ""
