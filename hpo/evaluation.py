"""lm-eval over a litgpt checkpoint: the `LM` both scoring stages use (score, generate) and the one way they call
lm-eval.

The model is litgpt's `GPT` wrapped in lm-eval's `LM` interface (`LitGPTLM`), so any litgpt checkpoint is scored
as it is, without a conversion to Hugging Face format. Requests are encoded as lm-eval's Hugging Face backend (`HFLM`)
encodes them — lm-eval's `TemplateLM` split of a (context, continuation) pair: the context's trailing spaces moved
to the continuation, the whole encoded and the context's tokens cut off; BOS first where the tokenizer puts it
(litgpt's `use_bos`) unless the text starts with it (a chat template's prompt) — so both give the same
log-likelihoods and greedy responses (tests/test_peer.py). Log-likelihood requests are scored as HFLM scores
them, longest first in right-padded batches, one forward per distinct model input (the choices of a
multiple-choice instance whose continuations are one token share their context's), the output layer and
log-softmax only at the continuation's positions. `generate_until` samples with
`hpo.generation` — KV-cached, batched, each response drawn from a generator of its own seeded from the LM's seed,
the task, the instance (lm-eval's doc_id) and the response's index among the instance's `repeats` — and honours
the request's generation_kwargs: `until`, `max_gen_toks`, `do_sample` (false: greedy), `temperature`, `top_p`,
`top_k`, and the extra keys `repetition_penalty`, `presence_penalty`, `frequency_penalty`. It keeps the tokens
each instance cost (`usage`), and takes a response this worker drew before for exactly the same weights,
settings, prompt and seed from `hpo.cache` instead of sampling it again (EcoOptiGen's reuse when n grows:
the seed of response j does not depend on n). With `eval.chat_template`, lm-eval formats every prompt with the
checkpoint's chat template (`apply_chat_template`, through the transformers tokenizer of the checkpoint's folder, as
HFLM does). What this module needs of lm-eval beyond its public API is in `hpo.internals.lm_eval`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_eval.api.model import LM, TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from hpo import cache
from hpo.cache import cached, file_hash, folder_hash
from hpo.checkpoint import merged_state
from hpo.config import EvalSection, derive_seed
from hpo.internals.lm_eval import env_info_once, loading_tasks, request_tokens
from hpo.placement import Devices, placement
from hpo.search.ecooptigen import Budget, check_on_growing_subsets, instance_cost
from hpo.search.eval_pruning import Instance, InstanceWise
from hpo.tasks import dataset_record, input_hashes, no_bytecode, task_inputs

if TYPE_CHECKING:
    from litgpt.model import GPT
    from lm_eval.api.instance import Instance as Request
    from transformers import PreTrainedTokenizerBase

    from hpo.generation import Sampling

# torch, litgpt, transformers and `hpo.generation` (which imports torch) are imported where the LM first needs them,
# not with this module: the stage modules that import it are imported by the campaign process too (the workers'
# warm-up plugin), which never evaluates. lm-eval's model base class is light (no torch).

Row = tuple[int, list[int], "Sampling", int, Instance]  # request index, prompt ids, sampling, seed, instance
PADDING_SIDE = "right"  # loglikelihood batches and generation's prompts (each row at its own positions from 0)


def sampling_of(kwargs: dict[str, Any]) -> Sampling:
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


class LitGPTLM(TemplateLM):
    """litgpt's GPT over the checkpoint in `checkpoint_dir`, with a trial's LoRA adapter merged in, behind lm-eval's
    loglikelihood / generate_until interface (a `TemplateLM`, as HFLM is).

    The checkpoint's weights are read once per worker (`cache.base_state`, kept on the CPU: on a GPU only the
    evaluated model is there); `adapter` is merged into them in memory (`merged_state`, the same tensors litgpt's
    merge_lora writes), so a trial's score needs no merged checkpoint on disk and gives the same bytes as one.

    What a run leaves on the LM for its record: `manifest` (device, dtype, batch sizes, seed, …), `usage` (per
    (task, doc_id): the prompt's tokens and each response's tokens and end), `checks` and `pruned_after` (rule 2),
    `reused` and `sampled_tokens`.
    """

    backend = "causal"

    def __init__(
        self,
        checkpoint_dir: Path,
        batch_size: int,
        seed: int = 0,
        generation_batch_size: int = 16,
        budget: Budget | None = None,
        prices: tuple[float, float] | None = None,
        adapter: Path | None = None,
        precision: str = "32-true",
        instance_wise: InstanceWise | None = None,
        chat_template: bool = False,
    ) -> None:
        """Loads the model onto the device `precision` places evaluation on.

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
            instance_wise: with `eval.pruner`: evaluate the instances in the campaign's order, a chunk at a time,
                and stop where it says (`InstanceWise`); the requests of instances not evaluated get placeholder
                results (an empty response, a log-likelihood of -inf), which the stage leaves out.
            chat_template: `eval.chat_template`: load the checkpoint's chat template (transformers' tokenizer of
                `checkpoint_dir`) for lm-eval's `apply_chat_template`; a ValueError naming the key if it has none.
        """
        import torch
        from litgpt import Config, Tokenizer
        from litgpt.model import GPT

        super().__init__()
        placed = placement(precision, Devices.visible())
        self.model_device, self.model_dtype = torch.device(placed.device), getattr(torch, placed.eval_dtype)
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
        model.cos, model.sin = model.rope_cache(device=self.model_device)  # not in a checkpoint: as GPT() does
        self.model: GPT = model.to(device=self.model_device, dtype=self.model_dtype).eval()
        self.model.max_seq_length = config.block_size
        self.block_size: int = config.block_size
        self.batch_size = batch_size
        self.seed = seed
        self.generation_batch_size = generation_batch_size
        self.budget = budget
        self.prices = prices
        self.instance_wise = instance_wise
        self.chat = _chat_tokenizer(checkpoint_dir) if chat_template else None
        self.eos_ids = _generation_eos(checkpoint_dir)
        # what the responses depend on, for the response cache: the base weights and the adapter's
        self.weights = file_hash(weights) + ("" if adapter is None else file_hash(adapter / "lit_model.pth.lora"))
        self.reused = 0  # responses taken from this worker's earlier trials (rule 3), not sampled again
        self.sampled_tokens = 0  # response tokens sampled by this LM
        self.checks: list[dict[str, Any]] = []  # rule 2's subsets and verdicts
        self.pruned_after: int | None = None  # instances sampled before rule 2 declared the budget exceeded
        # per (task, doc_id): the prompt's tokens (once) and each response's sampled tokens and end
        self.usage: dict[Instance, dict[str, Any]] = {}
        self.manifest = {
            "device": self.model_device.type,
            "dtype": str(self.model_dtype).removeprefix("torch."),
            "padding_side": PADDING_SIDE,
            "batch_size": batch_size,
            "chat_template": chat_template,
            "eos_ids": sorted({self.tokenizer.eos_id, *self.eos_ids} - {None}),  # where a response ends
            "cpu_threads": torch.get_num_threads(),
            "generation_batch_size": generation_batch_size,
            "generation_seed": seed,
        }

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_id)

    @property
    def prefix_token_id(self) -> int:  # HFLM's: the context of an empty-context request
        return int(self.tokenizer.bos_id if self.tokenizer.bos_id is not None else self.tokenizer.eos_id)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """HFLM's `tok_encode`: the text's tokens, with BOS first where the tokenizer puts it (litgpt's `use_bos`,
        what fine-tuning encoded prompts with; `hpo.export` gives a Hugging Face folder the same rule) unless
        `add_special_tokens` is False, or None and the text starts with BOS already (a chat template's prompt
        does: no second BOS)."""
        if self.tokenizer.backend == "huggingface":  # the text's tokens alone, no post-processor's specials
            ids: list[int] = self.tokenizer.processor.encode(string, add_special_tokens=False).ids
        else:  # sentencepiece adds none
            ids = self.tokenizer.encode(string, bos=False).tolist()
        bos = self.tokenizer.bos_id
        if add_special_tokens is None:
            add_special_tokens = not (ids and ids[0] == bos)
        return [bos, *ids] if add_special_tokens and self.tokenizer.use_bos and bos is not None else ids

    def _loglikelihood_tokens(
        self, requests: list[tuple[tuple[str, str], list[int], list[int]]], **kwargs: Any
    ) -> list[tuple[float, bool]]:
        return self._score([(context, continuation) for _, context, continuation in requests])

    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(log-likelihood, greedy) of each continuation given its context, as HFLM computes them."""
        import torch
        import torch.nn.functional as F

        from hpo.generation import logits_at

        device = self.model_device
        # requests with the same model input (context + continuation but its last token, left-truncated to the
        # context) share one forward: e.g. the choices of a multiple-choice instance when each is one token
        inputs: dict[tuple[int, ...], int] = {}  # model input -> continuation positions needed (the most)
        for context, continuation in pairs:
            seq = tuple((context + continuation)[-(self.block_size + 1) : -1])
            inputs[seq] = max(inputs.get(seq, 0), len(continuation))
        # longest first (lm-eval's order): a batch's rows are of similar lengths, little padding is computed
        order = sorted(inputs, key=lambda seq: (-len(seq), seq))
        logprobs: dict[tuple[int, ...], torch.Tensor] = {}  # model input -> its last positions' log-softmax
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = torch.zeros((len(chunk), len(chunk[0])), dtype=torch.long)  # right-padded
                rows: list[int] = []
                positions: list[int] = []  # each input's last positions: those its continuations are scored at
                for i, seq in enumerate(chunk):
                    batch[i, : len(seq)] = torch.tensor(seq)
                    rows += [i] * inputs[seq]
                    positions += range(len(seq) - inputs[seq], len(seq))
                where = (torch.tensor(rows, device=device), torch.tensor(positions, device=device))
                logits = logits_at(self.model, batch.to(device), where)
                scored = F.log_softmax(logits.float(), dim=-1).cpu().split([inputs[seq] for seq in chunk])
                logprobs.update(zip(chunk, scored, strict=True))
            results: list[tuple[float, bool]] = []
            for context, continuation in pairs:
                seq = tuple((context + continuation)[-(self.block_size + 1) : -1])
                scores = logprobs[seq][-len(continuation) :]
                target = torch.tensor(continuation)
                total = scores.gather(1, target[:, None]).sum().item()
                results.append((float(total), bool((scores.argmax(-1) == target).all())))
        return results

    def loglikelihood(self, requests: list[Request], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log-likelihood, greedy) of each request's continuation given its context; with `instance_wise`, the
        instances' requests in the campaign's order until it stops (the rest: -inf, not greedy)."""
        pairs = [request_tokens(self, *request.args) for request in requests]
        instance_wise = self.instance_wise
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

    def loglikelihood_rolling(self, requests: list[Request], disable_tqdm: bool = False) -> list[float]:
        """Each request's text's log-likelihood, scored in disjoint windows of the model's context (as HFLM)."""
        windows: list[list[tuple[list[int], list[int]]]] = []
        for (text,) in (r.args for r in requests):
            tokens = self.tok_encode(text)  # as HFLM: BOS first where the tokenizer puts it
            windows.append(
                [
                    (list(c), list(x))
                    for c, x in map(
                        make_disjoint_window,
                        get_rolling_token_windows(
                            token_list=tokens,
                            prefix_token=self.prefix_token_id,
                            max_seq_len=self.block_size,
                            context_len=1,
                        ),
                    )
                ]
            )
        scored = iter(self._score([w for own in windows for w in own]))  # all requests' windows batched
        return [sum(next(scored)[0] for _ in own) for own in windows]

    def generate_until(self, requests: list[Request], disable_tqdm: bool = False) -> list[str]:
        """Each request's response (sampled with `hpo.generation`, or taken from the worker's response cache);
        with `budget`, EcoOptiGen's rule 2 on growing subsets; with `instance_wise`, the campaign's order until it
        stops. A response not sampled is empty."""
        # lm-eval hands each request `repeats` times in a row (the same object): its copies are responses 0..n-1
        copies: Counter[int] = Counter()
        by_instance: dict[Instance, list[Row]] = {}
        for row, request in enumerate(requests):
            context, kwargs = request.args
            sampling = sampling_of(kwargs)
            prompt = self.tok_encode(context)[-(self.block_size - sampling.max_new_tokens) :]
            index = copies[id(request)]
            copies[id(request)] += 1
            instance = (str(request.task_name), int(request.doc_id))
            row_seed = derive_seed(self.seed, *instance, index)
            by_instance.setdefault(instance, []).append((row, prompt, sampling, row_seed, instance))
        outputs: list[str] = [""] * len(requests)
        instances = list(by_instance)
        budget, instance_wise = self.budget, self.instance_wise

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

    @property
    def tokenizer_name(self) -> str:  # HFLM's: names lm-eval's request cache of chat-templated prompts
        return str(self._chat().name_or_path).replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """HFLM's `apply_chat_template`: the chat rendered by the checkpoint's template (without the system turn
        when the template rejects one)."""
        import jinja2

        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        kwargs["continue_final_message"] = not add_generation_prompt
        try:
            return str(self._chat().apply_chat_template(chat_history, **kwargs))
        except jinja2.exceptions.TemplateError:
            turns = [turn for turn in chat_history if turn["role"] != "system"]
            return str(self._chat().apply_chat_template(turns, **kwargs))

    def _chat(self) -> PreTrainedTokenizerBase:
        if self.chat is None:
            raise ValueError("apply_chat_template: this LM was made without eval.chat_template (LitGPTLM)")
        return self.chat

    def prompt_cost(self, prompt: list[int]) -> float:
        """A prompt's cost (tokens, or money)."""
        return instance_cost(len(prompt), [], self.prices)

    def instance_cost(self, instance: Instance) -> float:
        """An instance's inference cost so far: its prompt once and all its responses (tokens, or money)."""
        used = self.usage[instance]
        return instance_cost(used["prompt_tokens"], [r["tokens"] for r in used["responses"]], self.prices)

    def _sample(self, rows: list[Row], outputs: list[str]) -> None:
        """Samples `rows` (request index, prompt, sampling, seed, instance) — or takes a response this worker drew
        before for the same weights, settings, prompt and seed — and records each instance's usage."""
        from hpo.generation import generate

        groups: dict[Sampling, list[Row]] = {}
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
                batch_size=self.generation_batch_size,
                eos_ids=self.eos_ids,
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


def _generation_eos(checkpoint_dir: Path) -> tuple[int, ...]:
    """The end-of-sequence tokens where transformers' `generate` stops for a checkpoint converted from a Hugging
    Face model: its generation_config.json's `eos_token_id` (else config.json's), which may name another token than
    the tokenizer's EOS (SmolLM2-Instruct's: `<|im_end|>`, the end of a chat turn). HFLM stops there too."""
    import json

    for name in ("generation_config.json", "config.json"):
        if (path := checkpoint_dir / name).is_file():
            ids = json.loads(path.read_text()).get("eos_token_id")
            if ids is not None:
                return tuple(ids) if isinstance(ids, list) else (int(ids),)
    return ()


def _chat_tokenizer(checkpoint_dir: Path) -> PreTrainedTokenizerBase:
    """The transformers tokenizer of a checkpoint's folder (tokenizer.json, tokenizer_config.json and the chat
    template there: chat_template.jinja or the config's `chat_template`), for `eval.chat_template`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, local_files_only=True)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"eval.chat_template: the tokenizer in {checkpoint_dir} has no chat template (no chat_template.jinja, "
            "no `chat_template` in tokenizer_config.json); set eval.chat_template to false or use a chat model"
        )
    return tokenizer


def evaluate(
    lm: LM,
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
        lm: the `LM` (a `LitGPTLM`, or any lm-eval model).
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
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    include = [str(p) for p in (task_dir, evaluation.task_dir) if p is not None]
    # lm-eval's task index (~14 s with its built-in tasks) is built once per worker for the same task files.
    index_key = (tuple(include), evaluation.include_default_tasks, tuple(folder_hash(Path(p)) for p in include))
    with no_bytecode():  # user `!function` modules live in a DVC-tracked folder: no __pycache__ there
        task_manager = cached(
            "task_index",
            index_key,
            lambda: TaskManager(include_path=include or None, include_defaults=evaluation.include_default_tasks),
        )
        inputs = task_inputs(task_manager, evaluation.tasks, root)
        with loading_tasks(task_manager, configure) as loaded, env_info_once():
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
                apply_chat_template=evaluation.chat_template,
            )
    assert results is not None
    datasets = {name: dataset_record(loaded[name], root) for name in sorted(loaded)}
    hub = {name: record for name, record in datasets.items() if record is not None}
    return results, input_hashes(inputs, root), hub
