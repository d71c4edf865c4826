"""params.yaml -> typed, validated, frozen objects; the one place that knows the schema.

Every section of a params file maps to one model here. Loading fails with a single `ParamsError` that names the
file, the key, the value and what was expected, before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hpo.search.space import CategoricalDimension, Dimension, FloatDimension, IntDimension
from hpo.textfile import TextFileError, read_text

# litgpt's own defaults for `litgpt finetune_lora` (litgpt/finetune/lora.py:setup, torch.optim.AdamW): the
# baseline trial uses them, and tests/test_config.py checks they still match the installed litgpt.
LITGPT_LORA_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "global_batch_size": 16,
}

SAMPLERS = ("tpe", "gp", "skopt", "random", "qmc")
TUNABLE = (
    "learning_rate",
    "weight_decay",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "gradient_accumulation",
    "max_steps",
    "lr_warmup_steps",
)
# What a generation campaign searches (campaign.kind: generate): how the model is asked and sampled.
GEN_TUNABLE = (
    "temperature",
    "top_p",
    "top_k",
    "n",
    "max_new_tokens",
    "stop",
    "template",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "generation_seed",
)
# What each kind of trial searches: a joint trial trains, merges, then generates with its own settings.
KIND_TUNABLE = {"finetune": TUNABLE, "generate": GEN_TUNABLE, "joint": TUNABLE + GEN_TUNABLE}
TASK_DEFAULT = "task"  # the stop set / template name that keeps the task's own `until` / `doc_to_text`
UTILITIES = ("success_rate", "pass_at_n", "mean_correct", "majority_vote")  # built in (hpo.utility)
UTILITY_FUNCTION = r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.py:[A-Za-z_][A-Za-z0-9_]*$"  # a user's: <file>.py:<function>


class ParamsError(ValueError):
    """A params file that does not hold a valid campaign; the message names file, key, value and expectation."""


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
PRUNERS = ("median", "percentile", "asha", "hyperband")


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
        description="what a trial is: finetune (train_lora → merge_lora → score), generate (sample and score in "
        "one stage, on the base model) or joint (train_lora → merge_lora → generate on the trial's own model, "
        "LoRA and generation settings searched together)",
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
        from hpo.search.objectives import GENERATION, TRAINING

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
    """The default base model, built and pretrained locally."""

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
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"head size n_embd / n_head = {self.n_embd // self.n_head} is odd; expected an even head size "
                "(rotary position embeddings rotate pairs of dimensions)"
            )
        return self


# A trial of an earlier campaign of the workspace: `<campaign>/<trial>`, or `<campaign>@best` (its report's best).
TRIAL_REFERENCE = r"^[A-Za-z0-9_][A-Za-z0-9_.]*(@best|/[A-Za-z0-9_]+)$"


def merged_model(reference: str) -> Path:
    """Where a `<campaign>/<trial>` reference's merged model is, relative to the workspace."""
    campaign, trial = reference.split("/")
    return Path("campaigns") / campaign / "trials" / trial / "merged"


class ModelSection(_Section):
    """The base model: a litgpt checkpoint folder, a trial of an earlier campaign (its merged model), or the tiny
    default built by the base_model stage."""

    checkpoint_dir: Path | None = None
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


class Params(_Section):
    """A whole campaign declaration."""

    campaign: CampaignSection
    space: dict[str, Dimension] = Field(min_length=1)
    data: DataSection
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()
    generate: GenerateSection = GenerateSection()
    eval: EvalSection

    @model_validator(mode="before")
    @classmethod
    def _check_names(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict):
            return raw
        kind = (raw.get("campaign") or {}).get("kind", "finetune") if isinstance(raw.get("campaign"), dict) else None
        if kind not in KIND_TUNABLE:
            return raw  # campaign.kind's own check names it
        tunable = KIND_TUNABLE[kind]
        for name in raw["space"]:
            if name not in tunable:
                other = (
                    " (a generation setting: campaign.kind generate or joint)"
                    if name in GEN_TUNABLE
                    else " (a LoRA setting: campaign.kind finetune or joint)"
                    if name in TUNABLE
                    else ""
                )
                raise ValueError(
                    f"space.{name}: unknown hyperparameter for a {kind} campaign{other}; "
                    f"expected one of {', '.join(tunable)}"
                )
        return raw

    @model_validator(mode="after")
    def _check_model_source(self) -> Params:
        if self.model.checkpoint_dir is None and self.model.trial is None and self.data.corpus is None:
            raise ValueError("data.corpus: missing; the tiny base model (model.checkpoint_dir: null) needs a corpus")
        return self

    @model_validator(mode="after")
    def _check_tiny_model_limits(self) -> Params:
        if self.model.checkpoint_dir is None and self.model.trial is None:  # a checkpoint's: against its files
            self.check_model_limits(self.model.tiny.n_embd, self.model.tiny.block_size, "model.tiny")
        return self

    def check_model_limits(self, n_embd: int, block_size: int, model: str) -> None:
        """Checks the settings against what the model can take: a LoRA rank at most the embedding size, a
        training sequence at most the model's block size.

        Args:
            n_embd: the model's embedding size.
            block_size: the model's context length.
            model: where those come from, for the message (`model.tiny`, a checkpoint's model_config.yaml).

        Raises:
            ValueError: naming the key, the value and the limit that was hit.
        """
        ranks: dict[str, float] = {"train.lora_r": self.train.lora_r}
        dim = self.space.get("lora_r")
        if isinstance(dim, IntDimension | FloatDimension):
            ranks = {"space.lora_r.high": dim.high}
        elif isinstance(dim, CategoricalDimension):
            ranks = {"space.lora_r.choices": max(dim.choices)}
        for key, rank in ranks.items():
            if rank > n_embd:
                raise ValueError(
                    f"{key}: got {rank}; expected a LoRA rank <= the model's embedding size {n_embd} ({model} n_embd)"
                )
        if self.train.max_seq_length is not None and self.train.max_seq_length > block_size:
            raise ValueError(
                f"train.max_seq_length: got {self.train.max_seq_length}; expected at most the model's block size "
                f"{block_size} ({model} block_size)"
            )

    @model_validator(mode="after")
    def _check_pruner_fits_training(self) -> Params:
        pruner = self.campaign.pruner
        if pruner is None:
            return self
        if "max_steps" in self.space:
            raise ValueError(
                "campaign.pruner: the space searches max_steps, so trials train on schedules of different lengths "
                "and their losses at one step do not compare; expected a fixed train.max_steps with a pruner"
            )
        if self.train.eval_interval >= self.train.max_steps:
            raise ValueError(
                f"campaign.pruner: train.eval_interval ({self.train.eval_interval}) >= train.max_steps "
                f"({self.train.max_steps}), so the pruner is never asked; expected a validation before the last step"
            )
        minimum = getattr(pruner, "min_resource", None)
        if minimum is not None and minimum >= self.train.max_steps:
            raise ValueError(
                f"campaign.pruner.min_resource: got {minimum}; expected fewer steps than train.max_steps "
                f"({self.train.max_steps}), or the first rung is never reached"
            )
        return self

    @model_validator(mode="after")
    def _check_space_fits_settings(self) -> Params:
        # Each end of every dimension must be a valid setting (an int field needs an int dimension).
        for name, dim in self.space.items():
            generation = name in GEN_TUNABLE
            section = GenerateSection if generation else TrainSection
            settings = self.trial_generate if generation else self.trial_train
            if isinstance(dim, FloatDimension) and section.model_fields[name].annotation in (int, int | None):
                raise ValueError(f"space.{name}: {name} is an integer setting; expected type: int")
            values = dim.choices if isinstance(dim, CategoricalDimension) else [dim.low, dim.high]
            for value in values:
                try:
                    settings({name: value})
                except ValidationError as err:
                    msg = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
                    raise ValueError(f"space.{name}: value {value!r} is not a valid {name}: {msg}") from None
        return self

    def trial_train(self, values: dict[str, Any]) -> TrainSection:
        """The training settings of one trial: the fixed ones with the trial's LoRA values applied."""
        return TrainSection.model_validate(
            {**self.train.model_dump(), **{k: v for k, v in values.items() if k not in GEN_TUNABLE}}
        )

    def trial_generate(self, values: dict[str, Any]) -> GenerateSection:
        """The generation settings of one trial: the fixed ones with the trial's generation values applied."""
        return GenerateSection.model_validate(
            {**self.generate.model_dump(), **{k: v for k, v in values.items() if k not in TUNABLE}}
        )

    def seeds(self) -> dict[str, int]:
        """The seeds every trial records, each derived from the campaign seed."""
        names = ("sampler", "design", "train", "eval") + (("generate",) if self.campaign.generates else ())
        return {name: derive_seed(self.campaign.seed, name) for name in names}

    def trial_threads(self) -> int:
        """The torch CPU threads a trial proposed now runs with: `campaign.cpu_threads`, or this machine's cores
        shared among the workers. Recorded with the trial, so a rebuild computes with the same number."""
        return self.campaign.cpu_threads or max(1, (os.cpu_count() or 1) // self.campaign.workers)

    def baseline_values(self) -> dict[str, Any]:
        """The searched hyperparameters at litgpt's defaults (global batch 16), for the baseline trial; in a
        generation campaign, at the `generate` section's settings (the default settings, for comparison); a joint
        campaign's baseline is both."""
        values: dict[str, Any] = {}
        for name in self.space:
            if name in GEN_TUNABLE:
                values[name] = getattr(self.generate, name)
            elif name == "gradient_accumulation":
                values[name] = max(1, LITGPT_LORA_DEFAULTS["global_batch_size"] // self.train.micro_batch_size)
            elif name in LITGPT_LORA_DEFAULTS:
                values[name] = LITGPT_LORA_DEFAULTS[name]
            else:
                values[name] = getattr(self.train, name)
        return values


def load_params(path: str | Path) -> Params:
    """Loads and validates a params file.

    Args:
        path: a YAML file with the sections campaign, space, data, model, train, eval.

    Returns:
        The validated, frozen campaign declaration.

    Raises:
        ParamsError: on a missing file, bad YAML or the first invalid value, naming its key.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found; expected a params YAML file")
    try:
        raw = parse_unique_yaml(read_text(path))
    except TextFileError as err:
        raise ParamsError(str(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{path}:{where}: not valid YAML ({problem})") from None
    except DuplicateKeyError as err:
        raise ParamsError(f"{path}: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"{path}: {describe_error(err, raw)}") from None


def describe_error(err: ValidationError, raw: Any) -> str:
    """One line for the first validation error: the dotted key, the value found and what was expected."""
    e = err.errors()[0]
    # Drop pydantic's union tags (the dimension type) so the key reads like the YAML path.
    loc = [str(p) for p in e["loc"]]
    loc = [
        p
        for i, p in enumerate(loc)
        if not (i == 2 and loc[0] == "space" and p in ("float", "int", "categorical"))
        and not (i == 2 and loc[:2] == ["campaign", "pruner"] and p in PRUNERS)
    ]
    key = ".".join(loc) or "(top level)"
    msg = str(e["msg"]).removeprefix("Value error, ")
    if e["type"] == "missing":
        return f"{key}: missing; expected a value"
    if e["type"] == "extra_forbidden":
        return f"{key}: unknown key; expected none of that name here"
    value = e.get("input")
    if not loc:  # a check of the whole file: its message names the key itself
        return msg
    if isinstance(value, dict):
        return f"{key}: {msg}"
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"{key}: got {shown}; expected {msg[0].lower() + msg[1:] if msg else 'a valid value'}"


class DuplicateKeyError(ValueError):
    """A mapping that names the same key twice; the message gives the dotted key and both lines."""


def parse_unique_yaml(text: str) -> Any:
    """YAML text's content, refusing a key written twice in one mapping (YAML keeps the last one silently).

    Raises:
        DuplicateKeyError: naming the dotted key and the lines of both occurrences.
        yaml.YAMLError: for text that is not YAML.
    """
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    stack: list[tuple[Any, str]] = [(node, "")]
    while stack:
        current, prefix = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in current.value:
                key = key_node.value
                dotted = f"{prefix}.{key}" if prefix else str(key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKeyError(f"{dotted}: written twice (lines {seen[key]} and {line}); expected once")
                seen[key] = line
                stack.append((value_node, dotted))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, prefix) for item in current.value)
    return yaml.safe_load(text)


def derive_seed(seed: int, *names: object) -> int:
    """A seed for one purpose (sampler, design, train, eval of trial N) derived from the campaign seed."""
    digest = hashlib.sha256(":".join(str(x) for x in (seed, *names)).encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


def trial_id(number: int) -> str:
    """The folder and stage key of the Optuna trial `number`: t000, t001, …"""
    return f"t{number:03d}"


__all__ = [
    "CategoricalDimension",
    "FloatDimension",
    "IntDimension",
    "Params",
    "ParamsError",
    "derive_seed",
    "load_params",
    "trial_id",
]
