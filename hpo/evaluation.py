"""lm-eval over a litgpt checkpoint: the `LM` both scoring stages use (score, generate) and the one way they call
lm-eval.

The model is litgpt's `GPT` wrapped in lm-eval's `LM` interface, so any litgpt checkpoint is scored as it is,
without a conversion to Hugging Face format. Prompts are encoded exactly as litgpt's fine-tuning data is (context
with BOS, continuation without), loglikelihood batches are right-padded, and `generate_until` samples with
`hpo.generation` — KV-cached, batched, each response drawn from a generator of its own seeded from the LM's seed,
the task, the instance (lm-eval's doc_id) and the response's index among the instance's `repeats` — and honours
the request's generation_kwargs: `until`, `max_gen_toks`, `do_sample` (false: greedy), `temperature`, `top_p`,
`top_k`, and the extra keys `repetition_penalty`, `presence_penalty`, `frequency_penalty`. It keeps the tokens
each instance cost (`usage`), and takes a response this worker drew before for exactly the same weights,
settings, prompt and seed from `hpo.trials.cache` instead of sampling it again (EcoOptiGen's reuse when n grows:
the seed of response j does not depend on n).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo.checkpoint import merged_state
from hpo.config import EvalSection, derive_seed
from hpo.placement import Devices, placement
from hpo.search.ecooptigen import Budget, check_on_growing_subsets, instance_cost
from hpo.search.pruning import Instance, InstanceWise
from hpo.tasks import dataset_record, input_hashes, no_bytecode, task_inputs
from hpo.trials import cache
from hpo.trials.cache import cached, file_hash, folder_hash

Row = tuple[int, list[int], Any, int, tuple[str, int]]  # request index, prompt ids, sampling, seed, instance
PADDING_SIDE = "right"  # loglikelihood batches; generation batches hold prompts of one length (no padding)


def sampling_of(kwargs: dict[str, Any]) -> Any:
    """An lm-eval request's generation_kwargs as `hpo.generation.Sampling` (lm-eval's defaults: greedy, 256)."""
    from hpo.generation import Sampling

    until = kwargs.get("until") or []
    until = [until] if isinstance(until, str) else list(until)
    sample = bool(kwargs.get("do_sample", False))
    return Sampling(
        temperature=float(kwargs.get("temperature", 1.0)) if sample else 0.0,
        top_p=float(kwargs.get("top_p", 1.0)) if sample else 1.0,
        top_k=int(kwargs["top_k"]) if sample and kwargs.get("top_k") is not None else None,
        max_new_tokens=int(kwargs.get("max_gen_toks", 256)),
        stop=tuple(until),
        repetition_penalty=float(kwargs.get("repetition_penalty", 1.0)),
        presence_penalty=float(kwargs.get("presence_penalty", 0.0)),
        frequency_penalty=float(kwargs.get("frequency_penalty", 0.0)),
    )


def make_lm(
    checkpoint_dir: Path,
    batch_size: int,
    seed: int = 0,
    generation_batch_size: int = 16,
    budget: Budget | None = None,
    prices: tuple[float, float] | None = None,
    adapter: Path | None = None,
    precision: str = "32-true",
    instance_wise: InstanceWise | None = None,
) -> Any:
    """An lm-eval `LM` over the litgpt checkpoint in `checkpoint_dir`, with a trial's LoRA adapter merged in.

    The checkpoint's weights are read once per worker (`cache.base_state`, kept on the CPU: on a GPU only the
    evaluated model is there); `adapter` is merged into them in memory (`merged_state`, the same tensors litgpt's
    merge_lora writes), so a trial's score needs no merged checkpoint on disk and gives the same bytes as one.

    Args:
        checkpoint_dir: a complete litgpt checkpoint (the campaign's base model).
        batch_size: rows per loglikelihood batch.
        seed: seeds every sampled response (with task, doc_id and response index).
        generation_batch_size: rows (instance × response) sampled together.
        budget: check generation against EcoOptiGen's inference budget on growing subsets of the instances
            (rule 2); when a subset is clearly over it, the rest is not sampled (`pruned_after`, `checks`).
        prices: per 1k input and output tokens: every cost (and the budget) in money; None: in tokens.
        adapter: a train_lora adapter folder trained on `checkpoint_dir`, or None for the checkpoint as it is.
        precision: `train.precision`, which decides the evaluated model's device and dtype (`hpo.placement`).
        instance_wise: with `eval.pruner`: evaluate the instances in the campaign's order, a chunk at a time, and
            stop where it says (`hpo.search.pruning.InstanceWise`); the requests of instances not evaluated get
            placeholder results (an empty response, a log-likelihood of -inf), which the stage leaves out.
    """
    import torch
    import torch.nn.functional as F
    from litgpt import Config, Tokenizer
    from litgpt.model import GPT
    from lm_eval.api.model import LM
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    placed = placement(precision, Devices.visible())
    device, dtype = torch.device(placed.device), getattr(torch, placed.eval_dtype)

    class LitGPTLM(LM):
        """litgpt's GPT behind lm-eval's loglikelihood / generate_until interface."""

        def __init__(self) -> None:
            super().__init__()
            config = Config.from_file(checkpoint_dir / "model_config.yaml")
            self.tokenizer = Tokenizer(checkpoint_dir)
            with torch.device("meta"):
                model = GPT(config)
            weights = checkpoint_dir / "lit_model.pth"
            state = cache.base_state(weights)
            # The model's tensors are the cached base weights themselves (and the merged layers' own copies): no
            # second copy of the model in memory. `.to` copies only where device or dtype differ (onto a GPU: the
            # one copy there), and evaluation never writes to a weight.
            model.load_state_dict(state if adapter is None else merged_state(adapter, state), assign=True)
            model.cos, model.sin = model.rope_cache(device=device)  # not in a checkpoint: computed, as GPT() does
            self.model = model.to(device=device, dtype=dtype).eval()
            self.model.max_seq_length = config.block_size
            self.block_size = config.block_size
            self.batch_size = batch_size
            # what the responses depend on, for the response cache: the base weights and the adapter's
            self.weights = file_hash(weights) + ("" if adapter is None else file_hash(adapter / "lit_model.pth.lora"))
            self.reused = 0  # responses taken from this worker's earlier trials (rule 3), not sampled again
            self.sampled_tokens = 0  # response tokens sampled by this LM
            self.checks: list[dict[str, Any]] = []  # rule 2's subsets and verdicts
            self.pruned_after: int | None = None  # instances sampled before rule 2 declared the budget exceeded
            # per (task, doc_id): the prompt's tokens (once) and each response's sampled tokens and end
            self.usage: dict[tuple[str, int], dict[str, Any]] = {}
            self.manifest = {
                "device": device.type,
                "dtype": str(dtype).removeprefix("torch."),
                "padding_side": PADDING_SIDE,
                "cpu_threads": torch.get_num_threads(),
                "generation_batch_size": generation_batch_size,
                "generation_seed": seed,
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
            if instance_wise is None:
                return self._score(pairs)
            results: list[tuple[float, bool]] = [(float("-inf"), False)] * len(requests)  # (not evaluated)
            by_instance: dict[Instance, list[int]] = {}
            for row, request in enumerate(requests):  # an instance's requests in lm-eval's order (its choices)
                by_instance.setdefault((str(request.task_name), int(request.doc_id)), []).append(row)

            def evaluate(chosen: list[Instance]) -> list[tuple[Any, list[tuple[float, bool]]]]:
                """Scores the chosen instances' requests; per instance its doc and results in choice order."""
                rows = [r for i in chosen for r in by_instance[i]]
                for r, result in zip(rows, self._score([pairs[r] for r in rows]), strict=True):
                    results[r] = result
                ordered = [sorted(by_instance[i], key=lambda r: requests[r].idx) for i in chosen]
                return [(requests[own[0]].doc, [results[r] for r in own]) for own in ordered]

            instance_wise.run(list(by_instance), evaluate)
            return results

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

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            # lm-eval hands each request `repeats` times in a row (the same object): its copies are responses 0..n-1
            copies: Counter[int] = Counter()
            by_instance: dict[tuple[str, int], list[Row]] = {}
            for row, request in enumerate(requests):
                context, kwargs = request.args
                sampling = sampling_of(kwargs)
                prompt = self._encode(context, bos=True)[-(self.block_size - sampling.max_new_tokens) :]
                index = copies[id(request)]
                copies[id(request)] += 1
                instance = (str(request.task_name), int(request.doc_id))
                row_seed = derive_seed(seed, *instance, index)
                by_instance.setdefault(instance, []).append((row, prompt, sampling, row_seed, instance))
            outputs: list[str] = [""] * len(requests)
            instances = list(by_instance)

            def sample_all(chosen: list[Instance]) -> list[tuple[Any, list[str]]]:
                """Samples the chosen instances' responses; per instance its doc and responses in order."""
                self._sample([r for i in chosen for r in by_instance[i]], outputs)
                return [(requests[by_instance[i][0][0]].doc, [outputs[r[0]] for r in by_instance[i]]) for i in chosen]

            if budget is None:
                if instance_wise is None:
                    sample_all(instances)
                else:  # the campaign's order, a chunk at a time until the pruner stops it
                    instance_wise.run(instances, sample_all)
                return outputs
            if instance_wise is not None:  # rule 2's subsets in the campaign's order
                instances = instance_wise.begin(instances)

            # EcoOptiGen's rule 2 (`ecooptigen.check_on_growing_subsets`): sample the first 1, 2, 4, … instances
            # until their responses' cost says whether the configuration keeps the budget (with eval.pruner, a
            # range is cut where a chunk ends and the pruner asked there: the same stop whatever ranges rule 2 asks).
            def sample(start: int, stop: int) -> list[float] | None:
                if instance_wise is None:
                    sample_all(instances[start:stop])
                else:
                    for a, b in instance_wise.cuts(start, stop):
                        if instance_wise.stopped_by is not None:
                            return None  # the evaluation pruner stopped the trial
                        instance_wise.evaluated(instances[a:b], sample_all(instances[a:b]))
                return [self.instance_cost(i) - self.prompt_cost(by_instance[i][0][1]) for i in instances[start:stop]]

            total = len(instances)
            prompt_cost = sum(self.prompt_cost(by_instance[i][0][1]) for i in instances) / max(1, total)
            checks, pruned_after = check_on_growing_subsets(total, budget, prompt_cost, sample)
            if instance_wise is not None:
                instance_wise.flush()
            self.checks += checks
            if pruned_after is not None:  # the other instances are not sampled: their responses stay empty
                self.pruned_after = pruned_after
            return outputs

        def prompt_cost(self, prompt: list[int]) -> float:
            """A prompt's cost (tokens, or money)."""
            return instance_cost(len(prompt), [], prices)

        def instance_cost(self, instance: tuple[str, int]) -> float:
            """An instance's inference cost so far: its prompt once and all its responses (tokens, or money)."""
            used = self.usage[instance]
            return instance_cost(used["prompt_tokens"], [r["tokens"] for r in used["responses"]], prices)

        def _sample(self, rows: list[Row], outputs: list[str]) -> None:
            """Samples `rows` (request index, prompt, sampling, seed, instance) — or takes a response this worker
            drew before for the same weights, settings, prompt and seed — and records each instance's usage."""
            from hpo.generation import generate

            groups: dict[Any, list[Row]] = {}
            for entry in rows:
                groups.setdefault(entry[2], []).append(entry)
            for sampling, group in groups.items():
                keys = [(self.weights, sampling, tuple(prompt), row_seed) for _, prompt, _, row_seed, _ in group]
                known = {k: c for k in keys if (c := cache.response(k)) is not None}
                todo = [(entry, key) for entry, key in zip(group, keys, strict=True) if key not in known]
                sampled = generate(
                    self.model,
                    self.tokenizer,
                    [entry[1] for entry, _ in todo],
                    sampling,
                    [entry[3] for entry, _ in todo],
                    batch_size=generation_batch_size,
                )
                for (_, key), completion in zip(todo, sampled, strict=True):
                    cache.keep_response(key, completion)
                    known[key] = completion
                self.reused += len(group) - len(todo)
                self.sampled_tokens += sum(c.tokens for c in sampled)
                for (row, prompt, _, _, instance), key in zip(group, keys, strict=True):
                    completion = known[key]
                    outputs[row] = completion.text
                    used = self.usage.setdefault(instance, {"prompt_tokens": len(prompt), "responses": []})
                    used["responses"].append({"tokens": completion.tokens, "finish": completion.finish})

    return LitGPTLM()


def evaluate(
    lm: Any,
    evaluation: EvalSection,
    task_dir: Path | None,
    seed: int,
    root: Path = Path("."),
    configure: Callable[[Any], None] | None = None,
    gen_kwargs: dict[str, Any] | None = None,
    log_samples: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Runs lm-eval's `simple_evaluate` on the campaign's tasks with all four seeds pinned.

    Args:
        lm: the `LM` (make_lm).
        evaluation: the campaign's eval section (tasks, limit, few-shot).
        task_dir: folder of task YAMLs to include (the campaign's), or None for lm-eval's built-in tasks only.
        seed: lm-eval's random, numpy, torch and few-shot seeds.
        root: the workspace root, where lm-eval reads relative data paths from (the working directory under DVC).
        configure: called with every task lm-eval loads, before it builds requests (e.g. `repeats`).
        gen_kwargs: merged into every generate_until task's generation_kwargs (lm-eval's own override).
        log_samples: keep lm-eval's per-instance samples (`results["samples"]`).

    Returns:
        lm-eval's results, the task inputs' sha256 (YAMLs, includes, data files, `!function` modules) and each
        hub dataset's path, name, revision and fingerprints.
    """
    from unittest import mock

    import lm_eval.evaluator
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    class RecordingTaskManager(TaskManager):
        """lm-eval's TaskManager, keeping the tasks it loads for `simple_evaluate` (to read their datasets) and
        configuring each before lm-eval builds its requests."""

        loaded: dict[str, Any]
        configure: Callable[[Any], None] | None

        def load(self, task_list: Any) -> Any:
            out = super().load(task_list)
            if self.configure is not None:
                for task in out["tasks"].values():
                    self.configure(task)
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
        task_manager.configure = configure
        inputs = task_inputs(task_manager, evaluation.tasks, root)
        with mock.patch.object(lm_eval.evaluator, "add_env_info", _env_info_once(lm_eval.evaluator.add_env_info)):
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
                log_samples=log_samples,
                bootstrap_iters=0,
                gen_kwargs=gen_kwargs or None,
            )
        task_manager.configure = None
    assert results is not None
    loaded = task_manager.loaded
    datasets = {name: dataset_record(loaded[name], root) for name in sorted(loaded)}
    hub = {name: record for name, record in datasets.items() if record is not None}
    return results, input_hashes(inputs, root), hub


_env_info: dict[str, Any] = {}


def _env_info_once(add_env_info: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """lm-eval's `add_env_info`, run once per process and its answer reused: it runs torch's `collect_env` (pip,
    nvidia-smi and other subprocesses), measured 1.3 s of every evaluation here, and a worker's environment does
    not change between trials. lm-eval's results keep the same keys."""

    def add(storage: dict[str, Any]) -> None:
        if not _env_info:
            fresh: dict[str, Any] = {}
            add_env_info(fresh)
            _env_info.update(fresh)
        storage.update(_env_info)

    return add
