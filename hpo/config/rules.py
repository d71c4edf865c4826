"""The rules between sections of a campaign declaration, each a check that raises `ValueError` naming the key, the
value and what was expected (`Params` runs them, in this order, when it is validated):

- the space searches only what the campaign's kind of trial can set (before the sections are read);
- a tiny base model needs a corpus; its size bounds the LoRA rank and the training sequence;
- a pruner needs a fixed training length with a validation before its end;
- an evaluation pruner needs one objective (one best trial to pair with);
- every end of every dimension is a valid setting of its section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hpo.config.sections import GenerateSection, TrainSection
from hpo.config.space import CategoricalDimension, FloatDimension, IntDimension
from hpo.config.vocabulary import GEN_TUNABLE, KIND_TUNABLE, TUNABLE

if TYPE_CHECKING:
    from hpo.config.params import Params


def space_names_fit_kind(raw: Any) -> Any:
    """The raw declaration, once every name in its space is one its kind of trial searches."""
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


def model_source_given(params: Params) -> None:
    """The tiny default base model is pretrained on `data.corpus`: it must be set."""
    if params.model.checkpoint_dir is None and params.model.trial is None and params.data.corpus is None:
        raise ValueError("data.corpus: missing; the tiny base model (model.checkpoint_dir: null) needs a corpus")


def tiny_model_fits(params: Params) -> None:
    """The settings fit the tiny default base model (a checkpoint's limits are checked against its files)."""
    tiny = params.model.tiny
    # a checkpoint's limits: against its files; a named architecture's: against litgpt's table (hpo.validate)
    if params.model.checkpoint_dir is None and params.model.trial is None and tiny.architecture is None:
        model_fits(params, tiny.n_embd, tiny.block_size, "model.tiny")


def model_fits(params: Params, n_embd: int, block_size: int, model: str) -> None:
    """Checks the settings against what the model can take: a LoRA rank at most the embedding size, a training
    sequence at most the model's block size.

    Args:
        params: the declaration.
        n_embd: the model's embedding size.
        block_size: the model's context length.
        model: where those come from, for the message (`model.tiny`, a checkpoint's model_config.yaml).

    Raises:
        ValueError: naming the key, the value and the limit that was hit.
    """
    ranks: dict[str, float] = {"train.lora_r": params.train.lora_r}
    dim = params.space.get("lora_r")
    if isinstance(dim, IntDimension | FloatDimension):
        ranks = {"space.lora_r.high": dim.high}
    elif isinstance(dim, CategoricalDimension):
        ranks = {"space.lora_r.choices": max(dim.choices)}
    for key, rank in ranks.items():
        if rank > n_embd:
            raise ValueError(
                f"{key}: got {rank}; expected a LoRA rank <= the model's embedding size {n_embd} ({model} n_embd)"
            )
    if params.train.max_seq_length is not None and params.train.max_seq_length > block_size:
        raise ValueError(
            f"train.max_seq_length: got {params.train.max_seq_length}; expected at most the model's block size "
            f"{block_size} ({model} block_size)"
        )


def pruner_fits_training(params: Params) -> None:
    """A pruner compares losses at the same step: a fixed training length, asked before its end."""
    pruner = params.campaign.pruner
    if pruner is None:
        return
    if "max_steps" in params.space:
        raise ValueError(
            "campaign.pruner: the space searches max_steps, so trials train on schedules of different lengths "
            "and their losses at one step do not compare; expected a fixed train.max_steps with a pruner"
        )
    if params.train.eval_interval >= params.train.max_steps:
        raise ValueError(
            f"campaign.pruner: train.eval_interval ({params.train.eval_interval}) >= train.max_steps "
            f"({params.train.max_steps}), so the pruner is never asked; expected a validation before the last step"
        )
    minimum = getattr(pruner, "min_resource", None)
    if minimum is not None and minimum >= params.train.max_steps:
        raise ValueError(
            f"campaign.pruner.min_resource: got {minimum}; expected fewer steps than train.max_steps "
            f"({params.train.max_steps}), or the first rung is never reached"
        )


def eval_pruner_fits_campaign(params: Params) -> None:
    """The evaluation pruner pairs a trial with the study's one best trial: a single-objective campaign."""
    if params.eval.pruner is not None and params.campaign.multi_objective:
        raise ValueError(
            f"eval.pruner: campaign.objectives {params.campaign.objectives} has no one best trial to compare with "
            "(Optuna's WilcoxonPruner is single-objective); expected one objective, or no eval.pruner"
        )


def space_fits_settings(params: Params) -> None:
    """Each end of every dimension is a valid setting (an int field needs an int dimension)."""
    for name, dim in params.space.items():
        generation = name in GEN_TUNABLE
        section = GenerateSection if generation else TrainSection
        settings = params.trial_generate if generation else params.trial_train
        if isinstance(dim, FloatDimension) and section.model_fields[name].annotation in (int, int | None):
            raise ValueError(f"space.{name}: {name} is an integer setting; expected type: int")
        values = dim.choices if isinstance(dim, CategoricalDimension) else [dim.low, dim.high]
        for value in values:
            try:
                settings({name: value})
            except ValidationError as err:
                msg = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
                raise ValueError(f"space.{name}: value {value!r} is not a valid {name}: {msg}") from None


# What `Params` checks once its sections are read, in this order (the first rule broken is the error reported).
AFTER_SECTIONS = (
    model_source_given,
    tiny_model_fits,
    pruner_fits_training,
    eval_pruner_fits_campaign,
    space_fits_settings,
)
