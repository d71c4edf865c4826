"""The words a campaign declaration may use: what each kind of trial searches, the samplers, pruners and
utilities by name, litgpt's LoRA defaults (the baseline), the form of a trial reference; and the two names every
record derives from the declaration: a purpose's seed and a trial's id."""

from __future__ import annotations

import hashlib
from typing import Any

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
PRUNERS = ("median", "percentile", "asha", "hyperband")
# The costs a campaign may optimise or constrain, by the kind of trial that has them (hpo.search.objectives).
TRAINING = ("train_tokens", "train_steps", "lora_params")  # costs of trials that train
GENERATION = ("gen_tokens", "inference_cost")  # costs of trials that generate

# A trial of an earlier campaign of the workspace: `<campaign>/<trial>`, or `<campaign>@best` (its report's best).
TRIAL_REFERENCE = r"^[A-Za-z0-9_][A-Za-z0-9_.]*(@best|/[A-Za-z0-9_]+)$"


def derive_seed(seed: int, *names: object) -> int:
    """A seed for one purpose (sampler, design, train, eval of trial N) derived from the campaign seed."""
    digest = hashlib.sha256(":".join(str(x) for x in (seed, *names)).encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


def trial_id(number: int) -> str:
    """The folder and stage key of the Optuna trial `number`: t000, t001, …"""
    return f"t{number:03d}"
