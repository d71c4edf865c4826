"""One typed, frozen model per section of a params file (campaign, data, model, train, eval, generate), each
checking its own keys; the rules between sections are in `hpo.config.rules`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hpo.config.vocabulary import (
    GENERATION,
    LITGPT_LORA_DEFAULTS,
    TASK_DEFAULT,
    TRAINING,
    TRIAL_REFERENCE,
    UTILITIES,
    UTILITY_FUNCTION,
)
from hpo.layout import CampaignPaths


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WarmStart(_Section):
    """Earlier campaigns whose completed trials enter the study as prior observations."""

    campaigns: list[str] = Field(default_factory=list)
    allow_different_data: bool = Field(default=False, description="accept sources run on other data or model")


class _Pruner(_Section):
    """Stops training trials early from their validation loss at each evaluation interval (`train.eval_interval`,
    in optimizer steps): one of Optuna's pruners, asked in the worker while the trial trains."""


class MedianPruner(_Pruner):
    """Optuna's `MedianPruner`: stop a trial whose validation loss is worse than the median of earlier trials' at
    the same step."""

    name: Literal["median"]
    n_startup_trials: int = Field(default=4, ge=0, description="trials run to the end before any is pruned")
    n_warmup_steps: int = Field(default=0, ge=0, description="steps of a trial before it may be pruned")
    n_min_trials: int = Field(default=1, ge=1, description="trials reported at a step before it prunes there")


class PercentilePruner(_Pruner):
    """Optuna's `PercentilePruner`: stop a trial that is not in the best `percentile` % at the same step."""

    name: Literal["percentile"]
    percentile: float = Field(gt=0, lt=100, description="keep trials within the best this many percent")
    n_startup_trials: int = Field(default=4, ge=0)
    n_warmup_steps: int = Field(default=0, ge=0)
    n_min_trials: int = Field(default=1, ge=1)


class SuccessiveHalvingPruner(_Pruner):
    """Optuna's `SuccessiveHalvingPruner` (asynchronous successive halving, ASHA): rungs at min_resource ×
    reduction_factor^k steps; a trial goes on past a rung only within the best 1/reduction_factor there."""

    name: Literal["asha"]
    min_resource: int = Field(default=10, ge=1, description="steps at the first rung")
    reduction_factor: int = Field(default=3, ge=2)
    min_early_stopping_rate: int = Field(default=0, ge=0)
    bootstrap_count: int = Field(
        default=0, ge=0, description="a trial at a rung with no more than this many trials is pruned (Optuna's)"
    )


class HyperbandPruner(_Pruner):
    """Optuna's `HyperbandPruner`: several successive-halving brackets from min_resource to `train.max_steps`."""

    name: Literal["hyperband"]
    min_resource: int = Field(default=10, ge=1, description="steps at the first rung")
    reduction_factor: int = Field(default=3, ge=2)
    bootstrap_count: int = Field(default=0, ge=0)


Pruner = Annotated[
    MedianPruner | PercentilePruner | SuccessiveHalvingPruner | HyperbandPruner, Field(discriminator="name")
]


class StopAfter(_Section):
    """Budgets beside `n_trials`: the campaign stops proposing once the trials recorded so far spent any of them
    (trials already running finish)."""

    wall_seconds: float | None = Field(default=None, gt=0, description="the trials' wall time, all stages, summed")
    train_tokens: int | None = Field(default=None, gt=0, description="the tokens all trials trained on")
    gpu_hours: float | None = Field(
        default=None, gt=0, description="the trials' wall time times the GPUs their worker used (0 on CPU)"
    )


class CampaignSection(_Section):
    """Who the campaign is and how it searches."""

    # One safe path component: no separator, no leading dot (so never `.` or `..`), no `-` (stage keys use it).
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.]*$", max_length=100, description="folder under campaigns/")
    seed: int = Field(ge=0, lt=2**31)
    n_trials: int = Field(ge=1, description="proposed trials in all, design points included")
    n_init: int = Field(ge=0, description="Latin-hypercube design points, run first")
    kind: Literal["finetune", "generate", "joint"] = Field(
        default="finetune",
        description="what a trial is: finetune (train_lora → score of the adapter on the base model), generate "
        "(sample and score in one stage, on the base model) or joint (train_lora → generate with the trial's own "
        "adapter, LoRA and generation settings searched together)",
    )
    sampler: Literal["tpe", "gp", "skopt", "random", "qmc"] = Field(
        default="gp",
        description="the proposer after the design points; gp by bench/search_quality.py (TPE learns from pruned "
        "trials, GP only from complete ones: the default campaign, which prunes, says tpe)",
    )
    acquisition: Literal["EI", "PI", "LCB", "gp_hedge"] = "EI"
    baseline: bool = True
    warm_start: WarmStart = WarmStart()
    workers: int = Field(default=1, ge=1, description="trials run at once: warm worker processes of a local cluster")
    scheduler: str | None = Field(
        default=None,
        pattern=r"^(tcp|tls|inproc|ws|wss|ucx)://\S+$",
        description="address of a running Dask scheduler whose workers run the trials (instead of a local cluster)",
    )
    cpu_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch CPU threads per trial, recorded with each trial (CPU results depend on it); "
        "default: this machine's cores divided by workers",
    )
    max_failures: int | None = Field(default=None, ge=0, description="stop once more trials than this failed")
    optimization_budget: float | None = Field(
        default=None,
        gt=0,
        description="EcoOptiGen's B.o (generation campaigns): stop proposing once the trials' inference costs "
        "(tokens, or money with generate.price_per_1k) add up to this",
    )
    storage: str | None = Field(default=None, description="Optuna RDB URL (postgresql://…); a journal file if unset")
    objectives: list[Literal["score", "train_tokens", "train_steps", "lora_params", "gen_tokens", "inference_cost"]] = (
        Field(
            default=["score"],
            min_length=1,
            description="what the study optimises: the score (eval.direction) first, then costs to minimise; more "
            "than one makes a multi-objective campaign with a Pareto front",
        )
    )
    constraints: dict[
        Literal["wall_seconds", "worker_rss_mb", "train_tokens", "gen_tokens", "inference_cost"], float
    ] = Field(
        default_factory=dict,
        description="upper limits on a trial's costs; a trial over any is recorded infeasible, and the sampler "
        "is told (Optuna's constraints_func)",
    )
    stop_after: StopAfter = Field(
        default=StopAfter(), description="stop proposing once the trials spent this wall time, tokens or GPU-hours"
    )
    pruner: Pruner | None = Field(
        default=None,
        description="multi-fidelity pruning of training trials on their validation loss (median, percentile, asha, "
        "hyperband); the step a trial was stopped at is recorded with it, so a rebuild stops there too",
    )

    @property
    def trains(self) -> bool:
        """Whether a trial trains and merges a LoRA adapter (finetune, joint)."""
        return self.kind in ("finetune", "joint")

    @property
    def generates(self) -> bool:
        """Whether a trial samples with generation settings and scores their utility (generate, joint)."""
        return self.kind in ("generate", "joint")

    @property
    def multi_objective(self) -> bool:
        """Whether the study has more than one objective (a Pareto front rather than one best)."""
        return len(self.objectives) > 1

    def _check_objectives(self) -> None:
        if self.objectives[0] != "score" or len(set(self.objectives)) < len(self.objectives):
            raise ValueError(f"objectives: got {self.objectives}; expected score first, then costs, each once")
        for name in [*self.objectives, *self.constraints]:
            if (name in TRAINING and not self.trains) or (name in GENERATION and not self.generates):
                raise ValueError(
                    f"{'objectives' if name in self.objectives else 'constraints'}: {name} is not a cost of a "
                    f"{self.kind} trial; expected one of the kind's costs"
                )
        for name, limit in self.constraints.items():
            if not limit > 0:
                raise ValueError(f"constraints.{name}: got {limit}; expected a limit > 0")
        if self.multi_objective:
            refused = {
                "sampler skopt": self.sampler == "skopt",
                "a pruner": self.pruner is not None,
                "warm_start.campaigns": bool(self.warm_start.campaigns),
            }
            for what, found in refused.items():
                if found:
                    raise ValueError(
                        f"objectives: {self.objectives} makes a multi-objective campaign, which does not take {what} "
                        "(Optuna's pruners and scikit-optimize are single-objective; priors carry one score); "
                        "expected one objective, or none of it"
                    )

    @model_validator(mode="after")
    def _check_budget(self) -> CampaignSection:
        if self.n_init > self.n_trials:
            raise ValueError(f"n_init ({self.n_init}) must be <= n_trials ({self.n_trials})")
        self._check_objectives()
        if self.stop_after.train_tokens is not None and not self.trains:
            raise ValueError(
                f"stop_after.train_tokens: got {self.stop_after.train_tokens} in a {self.kind} campaign, whose trials "
                "train nothing; expected it in a finetune or joint campaign (optimization_budget counts inference)"
            )
        if self.pruner is not None and self.warm_start.campaigns:
            raise ValueError(
                "pruner: a warm-started campaign's priors have no validation losses, and the pruner would count "
                "them as trials run to the end; expected a pruner or warm_start.campaigns, not both"
            )
        if self.constraints and self.warm_start.campaigns:
            raise ValueError(
                "constraints: a warm-started campaign's priors carry no constraint values (Optuna's GP sampler needs "
                "them on every trial); expected constraints or warm_start.campaigns, not both"
            )
        if self.pruner is not None and not self.trains:
            raise ValueError(
                f"pruner: got {self.pruner.name!r} in a {self.kind} campaign; expected it in a finetune or joint "
                "campaign only (it stops training on the validation loss; a generate campaign prunes with "
                "generate.inference_budget)"
            )
        if self.optimization_budget is not None and not self.generates:
            raise ValueError(
                f"optimization_budget: got {self.optimization_budget:g} in a {self.kind} campaign; expected it in a "
                "generate or joint campaign only (it counts the trials' inference costs)"
            )
        return self


class DataSection(_Section):
    """Where the task's examples come from and how they are split."""

    path: Path = Field(description="JSON list or JSONL of {instruction, output[, choices]} records")
    task_name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    n_val: int = Field(ge=1)
    n_eval: int = Field(ge=1)
    split_seed: int = Field(default=0, ge=0)
    corpus: Path | None = Field(default=None, description="plain-text corpus that pretrains the tiny base model")


class TinyModel(_Section):
    """The default base model, built and pretrained locally: a small LLaMA-style model of the sizes below, or a
    published litgpt architecture (`architecture`) at its real size, randomly initialised and pretrained here."""

    architecture: str | None = Field(
        default=None,
        description="a litgpt configuration name (`Config.from_name`: SmolLM2-135M, pythia-160m, …): its layers, "
        "widths, heads and MLP, with the project's tokenizer (vocab_size) and this block_size; n_layer, n_head, "
        "n_embd and intermediate_size are then not used",
    )
    n_layer: int = Field(default=2, ge=1)
    n_head: int = Field(default=4, ge=1)
    n_embd: int = Field(default=64, ge=8)
    intermediate_size: int = Field(default=176, ge=8)
    vocab_size: int = Field(default=384, ge=64)
    block_size: int = Field(default=64, ge=16)
    pretrain_steps: int = Field(default=300, ge=1)
    pretrain_batch_size: int = Field(default=32, ge=1)
    pretrain_learning_rate: float = Field(default=3e-3, gt=0)
    seed: int = Field(default=0, ge=0, description="fixed apart from the campaign seed, so campaigns share a model")

    @model_validator(mode="after")
    def _check_heads(self) -> TinyModel:
        if self.architecture is not None:
            sizes = [  # (a frozen declaration lists every field: only a size other than its default is refused)
                name
                for name in ("intermediate_size", "n_embd", "n_head", "n_layer")
                if getattr(self, name) != type(self).model_fields[name].default
            ]
            if sizes:
                raise ValueError(
                    f"{sizes[0]}: not used with architecture {self.architecture!r} (the architecture gives the "
                    "sizes); expected one or the other"
                )
            return self
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"head size n_embd / n_head = {self.n_embd // self.n_head} is odd; expected an even head size "
                "(rotary position embeddings rotate pairs of dimensions)"
            )
        return self


def merged_model(reference: str) -> Path:
    """Where a `<campaign>/<trial>` reference's merged model is, relative to the workspace."""
    campaign, trial = reference.split("/")
    return CampaignPaths(campaign).trial(trial).merged


class ModelSection(_Section):
    """The base model: a litgpt checkpoint folder, a Hugging Face model folder or a `.gguf` file (converted to a
    litgpt checkpoint by the base_model stage), a trial of an earlier campaign (its merged model), or the tiny
    default built by the base_model stage."""

    checkpoint_dir: Path | None = Field(
        default=None,
        description="a litgpt checkpoint folder, a Hugging Face model folder or a .gguf file; null: the tiny model",
    )
    architecture: str | None = Field(
        default=None,
        description="litgpt configuration name of a Hugging Face folder or .gguf (SmolLM2-135M-Instruct); inferred "
        "from its configuration when unset",
    )
    trial: str | None = Field(
        default=None,
        description="an earlier fine-tuning trial whose merged model is the base model: <campaign>/<trial> "
        "(default/t007) or <campaign>@best (that campaign's best trial, resolved when the campaign starts)",
    )
    tiny: TinyModel = TinyModel()

    @field_validator("trial")
    @classmethod
    def _check_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.match(TRIAL_REFERENCE, value):
            raise ValueError("<campaign>/<trial> (default/t007) or <campaign>@best")
        return value

    @model_validator(mode="before")
    @classmethod
    def _trial_checkpoint(cls, raw: Any) -> Any:
        # a named trial's checkpoint is its merged model: filled in, so every reader of checkpoint_dir finds it
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("trial"), str)
            or not re.match(TRIAL_REFERENCE, raw["trial"])
        ):
            return raw
        given = raw.get("checkpoint_dir")
        if raw["trial"].endswith("@best") or "/" not in raw["trial"]:
            if given is not None:
                raise ValueError(f"trial {raw['trial']!r} and checkpoint_dir {given} are both set; expected one")
            return raw
        derived = merged_model(raw["trial"])
        campaign, trial = raw["trial"].split("/")
        if given is not None and Path(given) == CampaignPaths(campaign).trial(trial).dir / "merged":
            return raw  # frozen by a campaign recorded when merged models lived in the trial's folder
        if given is not None and Path(given) != derived:
            raise ValueError(
                f"trial {raw['trial']!r} and checkpoint_dir {given} are both set; expected one (that trial's model "
                f"is {derived})"
            )
        return {**raw, "checkpoint_dir": str(derived)}


class TrainSection(_Section):
    """Fixed LoRA training settings; any of the TUNABLE ones may be overridden per trial by the space."""

    learning_rate: float = Field(default=LITGPT_LORA_DEFAULTS["learning_rate"], gt=0)
    weight_decay: float = Field(default=LITGPT_LORA_DEFAULTS["weight_decay"], ge=0)
    lora_r: int = Field(default=LITGPT_LORA_DEFAULTS["lora_r"], ge=1)
    lora_alpha: int = Field(default=LITGPT_LORA_DEFAULTS["lora_alpha"], ge=1)
    lora_dropout: float = Field(default=LITGPT_LORA_DEFAULTS["lora_dropout"], ge=0, le=1)
    gradient_accumulation: int = Field(default=1, ge=1)
    micro_batch_size: int = Field(default=4, ge=1)
    max_steps: int = Field(default=30, ge=1, description="optimizer steps")
    lr_warmup_steps: int = Field(default=3, ge=0)
    max_seq_length: int | None = Field(default=None, ge=8)
    mask_prompt: bool = True
    prompt_style: str = Field(default="litgpt.prompts.Default", description="a litgpt prompt-style name or class path")
    precision: str = "32-true"
    eval_interval: int = Field(default=10, ge=1, description="validation loss every N optimizer steps")
    lora_query: bool = True
    lora_key: bool = False
    lora_value: bool = True
    lora_projection: bool = False
    lora_mlp: bool = False
    lora_head: bool = False


class WilcoxonEvalPruner(_Section):
    """Optuna's `WilcoxonPruner`, asked while a trial is evaluated: the instances are evaluated in one shuffled
    order fixed by the campaign seed (the same for every trial, so the test is paired), `chunk` at a time; after
    each chunk a paired signed-rank test against the best trial so far on the same instances stops a trial that is
    worse with p < p_threshold. The number of instances evaluated is recorded with the trial."""

    name: Literal["wilcoxon"]
    p_threshold: float = Field(default=0.1, gt=0, lt=1, description="stop a trial worse than the best at this p")
    n_startup_steps: int = Field(default=2, ge=0, description="instances paired with the best before any stop")
    chunk: int = Field(default=10, gt=0, description="instances evaluated between two questions to the pruner")


class EvalSection(_Section):
    """The objective: lm-eval tasks, the metric to optimise and how to compute it."""

    tasks: list[str] = Field(min_length=1)
    metric: str = "acc"
    direction: Literal["maximize", "minimize"] = "maximize"
    limit: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=16, ge=1)
    num_fewshot: int = Field(default=0, ge=0)
    task_dir: Path | None = Field(default=None, description="extra lm-eval task folder; the data stage's by default")
    include_default_tasks: bool = Field(default=False, description="index lm-eval's built-in tasks (mmlu, hellaswag)")
    chat_template: bool = Field(
        default=False,
        description="format every prompt with the tokenizer's chat template, as lm-eval's --apply_chat_template",
    )
    pruner: WilcoxonEvalPruner | None = Field(
        default=None,
        description="instance-wise pruning of a trial's evaluation (score and generate stages): stop evaluating a "
        "trial once a paired test says it is worse than the best trial on the instances evaluated so far",
    )

    @model_validator(mode="after")
    def _check_pruner(self) -> EvalSection:
        if self.pruner is not None and self.limit is not None and self.limit < self.pruner.chunk:
            raise ValueError(
                f"eval.limit: got {self.limit}, below eval.pruner.chunk ({self.pruner.chunk}); expected at least one "
                "chunk of instances per task before the pruner is asked"
            )
        return self


class Prices(_Section):
    """Prices per 1k tokens, to speak money like EcoOptiGen (budgets then count money, not tokens)."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class GenerateSection(_Section):
    """How the model is asked and sampled in a generation campaign; any of GEN_TUNABLE may be set per trial by the
    space. Stop sets and prompt templates are declared by name and chosen by name."""

    temperature: float = Field(default=0.0, ge=0, description="0: greedy")
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1, description="null: no top-k")
    n: int = Field(default=1, ge=1, description="responses per instance")
    max_new_tokens: int = Field(default=32, ge=1)
    stop: str = Field(default=TASK_DEFAULT, description="a name in stop_sets, or `task`: the task's own `until`")
    stop_sets: dict[str, list[str]] = Field(default_factory=dict)
    template: str = Field(default=TASK_DEFAULT, description="a name in templates, or `task`: the task's prompt")
    templates: dict[str, str] = Field(
        default_factory=dict, description="name -> the task's doc_to_text in lm-eval's Jinja form, e.g. 'Q: {{q}} A:'"
    )
    repetition_penalty: float = Field(default=1.0, gt=0, description="1: none")
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    generation_seed: int = Field(default=0, ge=0, description="with the campaign seed, seeds every response")
    utility: str = Field(
        default="success_rate",
        description="the objective from each instance's n judged responses (hpo.utility): success_rate, pass_at_n, "
        "mean_correct, majority_vote, or <file>.py:<function>, a Python function of the judgements and answers in a "
        "file of the task folder (eval.task_dir, else data/tasks)",
    )
    batch_size: int = Field(default=16, ge=1, description="rows (instance × response) sampled together")
    inference_budget: float | None = Field(
        default=None,
        gt=0,
        description="EcoOptiGen's B.i: average cost per instance (prompt + all n responses) a configuration may "
        "spend, in tokens, or in money with price_per_1k; configurations over it are pruned (rules 1 and 2)",
    )
    price_per_1k: Prices | None = Field(default=None, description="price per 1k input and output tokens")

    @field_validator("utility")
    @classmethod
    def _check_utility(cls, value: str) -> str:
        if value not in UTILITIES and not re.match(UTILITY_FUNCTION, value):
            raise ValueError(f"{', '.join(UTILITIES)}, or <file>.py:<function> (a file of the task folder)")
        return value

    @model_validator(mode="after")
    def _check_names(self) -> GenerateSection:
        for key, declared, names in (("stop", "stop_sets", self.stop_sets), ("template", "templates", self.templates)):
            chosen = getattr(self, key)
            if chosen != TASK_DEFAULT and chosen not in names:
                known = ", ".join([TASK_DEFAULT, *names])
                raise ValueError(f"{key}: got {chosen!r}; expected one of {known} (names declared in {declared})")
            if TASK_DEFAULT in names:
                raise ValueError(f"{declared}.{TASK_DEFAULT}: the name {TASK_DEFAULT!r} means the task's own")
        for name, stops in self.stop_sets.items():
            if any(not stop for stop in stops):
                raise ValueError(f"stop_sets.{name}: got {stops!r}; expected a list of non-empty strings")
        return self
