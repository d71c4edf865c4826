"""Benchmark: generation throughput of a trial's sampler (`hpo.generation.generate`) against litgpt's own
`generate` on the same prompts, same model, same settings.

    python bench/generation_throughput.py                          # the tiny model architecture, random weights
    python bench/generation_throughput.py --checkpoint campaigns/default/trials/baseline/merged

litgpt's `generate` samples one sequence at a time (KV-cached); ours batches the rows of one prompt length (the n
responses of an instance, and instances of equal length) and seeds every row. Both run greedy and sampled
(temperature 0.8, top-k 50), `--n` responses per prompt, `--max-new-tokens` each; prompts are the TinyTopic
generative task's. So that both sample the same tokens, litgpt's global generator is seeded before each row with
the seed ours gives that row (`torch.manual_seed`, the same Mersenne Twister a `torch.Generator` seeds, and both
draw with `torch.multinomial` from the same distribution). Every row's tokens must be identical in both ways,
greedy and sampled, at every batch size: when they are not, the bench exits with status 1 naming the row and both
token lists, before it prints that ratio (bench/agree.py). Printed: tokens per second each way and the ratio
ours / litgpt per batch size. Goal (issue 10): >= 0.9x; batched should beat it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agree import check_agree  # noqa: E402  (bench/ is the script's folder, first on sys.path)


def load(checkpoint: Path | None) -> tuple[object, object]:
    import torch
    from litgpt import Config, Tokenizer
    from litgpt.model import GPT

    if checkpoint is None:  # the default tiny architecture with random weights: throughput does not need skill
        from hpo.config import TinyModel
        from stages.base_model import build_tiny

        checkpoint = Path(tempfile.mkdtemp(prefix="bench-gen-"))
        lines = (ROOT / "data/tinytopic_corpus.txt").read_text().splitlines()[:2000]
        build_tiny(TinyModel(), lines, checkpoint, 0)
    model = GPT(Config.from_file(checkpoint / "model_config.yaml"))
    state = torch.load(checkpoint / "lit_model.pth", weights_only=True)
    model.load_state_dict(state.get("model", state))
    model.eval()
    model.max_seq_length = model.config.block_size
    return model, Tokenizer(checkpoint)


def litgpt_loop(model, tokenizer, prompts, n, max_new, temperature, top_k) -> tuple[float, list[list[int]]]:
    import torch
    from litgpt.generate.base import generate

    out = []
    start = time.perf_counter()
    for i, prompt in enumerate(prompts):
        for j in range(n):
            torch.manual_seed(i * n + j)  # the seed `ours` gives this row
            model.set_kv_cache(batch_size=1)
            ids = generate(
                model,
                torch.tensor(prompt),
                len(prompt) + max_new,
                temperature=temperature,
                top_k=top_k,
                eos_id=tokenizer.eos_id,
                include_prompt=False,
            )
            model.clear_kv_cache()
            out.append([int(t) for t in ids if int(t) != tokenizer.eos_id])
    return time.perf_counter() - start, out


def ours(model, tokenizer, prompts, n, max_new, temperature, top_k, batch) -> tuple[float, list[list[int]]]:
    from hpo.generation import Sampling, generate

    rows = [p for p in prompts for _ in range(n)]
    seeds = list(range(len(rows)))  # row i * n + j: prompt i's response j, as litgpt_loop seeds it
    sampling = Sampling(temperature=temperature, top_k=top_k if temperature else None, max_new_tokens=max_new)
    start = time.perf_counter()
    done = generate(model, tokenizer, rows, sampling, seeds, batch_size=batch)
    return time.perf_counter() - start, [c.token_ids for c in done]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=4, help="responses per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    model, tokenizer = load(args.checkpoint.resolve() if args.checkpoint else None)
    records = [json.loads(x) for x in (ROOT / "data/tinytopic.jsonl").read_text().splitlines()[: args.prompts]]
    prompts = [tokenizer.encode(r["instruction"], bos=True).tolist() for r in records]
    print(f"{len(prompts)} prompts x {args.n} responses, {args.max_new_tokens} new tokens, {args.threads} threads")
    for temperature, top_k, label in ((0.0, None, "greedy"), (0.8, 50, "sampled T=0.8 top-k 50")):
        ours(model, tokenizer, prompts[:4], 1, 2, temperature, top_k, 8)  # warm-up
        ref_s, ref_ids = litgpt_loop(model, tokenizer, prompts, args.n, args.max_new_tokens, temperature, top_k)
        ref_tokens = sum(len(x) for x in ref_ids)
        print(f"\n{label}: litgpt generate, one sequence at a time: {ref_s:.2f} s, {ref_tokens / ref_s:.0f} tokens/s")
        for batch in args.batch:
            s, ids = ours(model, tokenizer, prompts, args.n, args.max_new_tokens, temperature, top_k, batch)
            tokens = sum(len(x) for x in ids)
            rows = {f"prompt {r // args.n} response {r % args.n}": r for r in range(len(ref_ids))}
            check_agree(
                {
                    "litgpt": {row: ref_ids[r] for row, r in rows.items()},
                    f"ours (batch {batch})": {row: ids[r] for row, r in rows.items() if r < len(ids)},
                },
                "token ids",
                label,
            )
            print(
                f"  ours, batch {batch:>3}: {s:.2f} s, {tokens / s:.0f} tokens/s, "
                f"ratio ours/litgpt {(tokens / s) / (ref_tokens / ref_s):.2f}x (tokens identical to litgpt's)"
            )


if __name__ == "__main__":
    main()
