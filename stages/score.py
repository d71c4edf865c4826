"""score: evaluate a merged checkpoint with lm-eval and write the trial's metrics.

lm-eval drives the evaluation (`simple_evaluate` with all four seeds pinned, task YAMLs from the campaign's task
folder and, when asked, lm-eval's built-in tasks such as `mmlu` or `hellaswag`). The model is litgpt's `GPT`
wrapped in lm-eval's `LM` interface, so any litgpt checkpoint is scored as it is, without a conversion to
Hugging Face format. Prompts are encoded exactly as litgpt's fine-tuning data is (context with BOS, continuation
without), batches are right-padded, and generation is greedy with litgpt's KV-cached `generate`.

The objective (`score`) is the mean of `eval.metric` over `eval.tasks`. metrics.json also records what the score
read: the sha256 of every task YAML, included YAML, data file and `!function` module (`hpo.tasks`), and for
tasks on hub datasets their path, name, revision and `datasets` fingerprints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hpo.config import EvalSection
from hpo.record.layout import CampaignPaths, stage_args
from hpo.record.records import read_trial
from hpo.tasks import dataset_record, input_hashes, no_bytecode, task_inputs
from hpo.trials.cache import cached, folder_hash, pin_threads


def make_lm(checkpoint_dir: Path, batch_size: int) -> Any:
    """An lm-eval `LM` over the litgpt checkpoint in `checkpoint_dir`."""
    import torch
    import torch.nn.functional as F
    from litgpt import Config, Tokenizer
    from litgpt.generate.base import generate
    from litgpt.model import GPT
    from lm_eval.api.model import LM
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32

    class LitGPTLM(LM):  # type: ignore[misc]
        """litgpt's GPT behind lm-eval's loglikelihood / generate_until interface."""

        def __init__(self) -> None:
            super().__init__()
            config = Config.from_file(checkpoint_dir / "model_config.yaml")
            self.tokenizer = Tokenizer(checkpoint_dir)
            with torch.device(device):
                model = GPT(config)
            state = torch.load(checkpoint_dir / "lit_model.pth", map_location=device, mmap=True)
            model.load_state_dict(state.get("model", state))
            self.model = model.to(device=device, dtype=dtype).eval()
            self.model.max_seq_length = config.block_size
            self.block_size = config.block_size
            self.batch_size = batch_size
            self.manifest = {
                "device": device.type,
                "dtype": str(dtype).removeprefix("torch."),
                "padding_side": "right",
                "cpu_threads": torch.get_num_threads(),
            }

        def _encode(self, text: str, bos: bool) -> list[int]:
            return self.tokenizer.encode(text, bos=bos, eos=False).tolist()

        @torch.inference_mode()
        def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
            results: list[tuple[float, bool]] = []
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start : start + self.batch_size]
                seqs = [(ctx + cont)[-(self.block_size + 1) :] for ctx, cont in chunk]
                inputs = [s[:-1] for s in seqs]
                width = max(len(x) for x in inputs)
                batch = torch.zeros((len(inputs), width), dtype=torch.long)
                for i, x in enumerate(inputs):
                    batch[i, : len(x)] = torch.tensor(x)
                logprobs = F.log_softmax(self.model(batch.to(device)).float(), dim=-1).cpu()
                for i, (_, cont) in enumerate(chunk):
                    n, end = len(cont), len(inputs[i])
                    rows = logprobs[i, end - n : end]
                    target = torch.tensor(cont)
                    total = rows.gather(1, target[:, None]).sum().item()
                    results.append((float(total), bool((rows.argmax(-1) == target).all())))
            return results

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            pairs = [(self._encode(c, bos=True), self._encode(x, bos=False)) for c, x in (r.args for r in requests)]
            return self._score(pairs)

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            out = []
            for (text,) in (r.args for r in requests):
                tokens = self._encode(text, bos=False)
                windows = [
                    make_disjoint_window(w)
                    for w in get_rolling_token_windows(
                        token_list=tokens,
                        prefix_token=self.tokenizer.bos_id if self.tokenizer.bos_id is not None else 0,
                        max_seq_len=self.block_size,
                        context_len=1,
                    )
                ]
                out.append(sum(lp for lp, _ in self._score([(list(c), list(x)) for c, x in windows])))
            return out

        @torch.inference_mode()
        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            outputs = []
            for context, kwargs in (r.args for r in requests):
                until = kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                max_new = int(kwargs.get("max_gen_toks", 32))
                prompt = self._encode(context, bos=True)[-(self.block_size - max_new) :]
                self.model.set_kv_cache(batch_size=1, device=device)
                tokens = generate(
                    self.model,
                    torch.tensor(prompt, device=device),
                    max_returned_tokens=len(prompt) + max_new,
                    temperature=0.0 if not kwargs.get("do_sample") else float(kwargs.get("temperature", 1.0)),
                    eos_id=self.tokenizer.eos_id,
                    include_prompt=False,
                )
                self.model.clear_kv_cache()
                text = self.tokenizer.decode(tokens)
                for stop in until:
                    text = text.split(stop)[0]
                outputs.append(text)
            return outputs

    return LitGPTLM()


def score(
    checkpoint_dir: Path, evaluation: EvalSection, task_dir: Path | None, seed: int, root: Path = Path(".")
) -> dict[str, Any]:
    """Scores a checkpoint on the campaign's lm-eval tasks.

    Args:
        checkpoint_dir: a complete litgpt checkpoint (the trial's merged model).
        evaluation: the campaign's eval section (tasks, metric, limit, batch size, few-shot).
        task_dir: folder of task YAMLs to include (the campaign's), or None for lm-eval's built-in tasks only.
        seed: the evaluation seed; lm-eval's random, numpy, torch and few-shot seeds are all set from it.
        root: the workspace root, where lm-eval reads relative data paths from (the working directory under DVC).

    Returns:
        `{"score": ..., "tasks": {task: {metric: value, metric_stderr: value}}, "lm_eval": {...}}`; `lm_eval`
        records, besides versions, sample counts and the model's settings, the sha256 of every file the tasks read
        (`inputs`: YAMLs and includes, data files, `!function` modules) and each hub dataset's path, name, revision
        and fingerprints (`datasets`).
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    class RecordingTaskManager(TaskManager):  # type: ignore[misc]
        """lm-eval's TaskManager, keeping the tasks it loads for `simple_evaluate` (to read their datasets)."""

        loaded: dict[str, Any]

        def load(self, task_list: Any) -> Any:
            out = super().load(task_list)
            self.loaded = {**self.loaded, **out["tasks"]}
            return out

    include = [str(p) for p in (task_dir, evaluation.task_dir) if p is not None]
    # lm-eval's task index (~14 s with its built-in tasks) is built once per worker for the same task files.
    index_key = (tuple(include), evaluation.include_default_tasks, tuple(folder_hash(Path(p)) for p in include))
    with no_bytecode():  # user `!function` modules live in a DVC-tracked folder: no __pycache__ there
        task_manager = cached(
            "task_index",
            index_key,
            lambda: RecordingTaskManager(
                include_path=include or None, include_defaults=evaluation.include_default_tasks
            ),
        )
        task_manager.loaded = {}
        inputs = task_inputs(task_manager, evaluation.tasks, root)
        lm = make_lm(checkpoint_dir, evaluation.batch_size)
        results = simple_evaluate(
            model=lm,
            tasks=list(evaluation.tasks),
            num_fewshot=evaluation.num_fewshot,
            limit=evaluation.limit,
            task_manager=task_manager,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            log_samples=False,
            bootstrap_iters=0,
        )
    assert results is not None
    loaded = task_manager.loaded
    datasets = {name: dataset_record(loaded[name], root) for name in sorted(loaded)}
    per_task: dict[str, dict[str, float | None]] = {}
    for task in evaluation.tasks:
        values = results["results"].get(task, {})
        metric_key = f"{evaluation.metric},none"
        if metric_key not in values:
            found = sorted(k.split(",")[0] for k in values if not k.startswith("alias"))
            raise KeyError(f"eval.metric: task {task!r} reports no {evaluation.metric!r}; it reports {found}")
        stderr = values.get(f"{evaluation.metric}_stderr,none")
        per_task[task] = {
            evaluation.metric: float(values[metric_key]),
            f"{evaluation.metric}_stderr": float(stderr) if isinstance(stderr, int | float) else None,
        }
    objective = sum(v[evaluation.metric] or 0.0 for v in per_task.values()) / len(per_task)
    return {
        "state": "complete",
        "score": round(objective, 6) if math.isfinite(objective) else None,
        "tasks": per_task,
        "lm_eval": {
            # every task's and group's version (a group such as mmlu lists each subtask)
            "versions": dict(sorted({**dict.fromkeys(evaluation.tasks), **results.get("versions", {})}.items())),
            "n_samples": {t: results.get("n-samples", {}).get(t, {}).get("effective") for t in evaluation.tasks},
            "num_fewshot": evaluation.num_fewshot,
            "seed": seed,
            **lm.manifest,
            "inputs": input_hashes(inputs, root),
            "datasets": {name: record for name, record in datasets.items() if record is not None},
        },
    }


def run(paths: CampaignPaths, trial_id: str) -> dict[str, Any]:
    """The stage for one recorded trial: what `python -m stages.score` and a warm worker both run."""
    params = paths.load()
    record = read_trial(paths, trial_id)
    pin_threads(record.get("threads"))
    trial = paths.trial(trial_id)
    trained = json.loads(trial.train_metrics.read_text())
    if trained["state"] != "complete":
        result: dict[str, Any] = {"state": trained["state"], "reason": trained["reason"], "score": None}
    else:
        result = score(trial.merged, params.eval, paths.tasks, record["seeds"]["eval"])
    trial.metrics.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    paths, trial_id = stage_args("Score one trial's merged model with lm-eval.", trial=True)
    result = run(paths, trial_id)
    print(json.dumps({"score": result["score"], "state": result["state"]}))


if __name__ == "__main__":
    main()
