"""The whole campaign declaration: its sections together (`hpo.config.sections`), checked against each other
(`hpo.config.rules`), and what one trial's settings, seeds and threads are."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, model_validator

from hpo.config import rules
from hpo.config.sections import (
    CampaignSection,
    DataSection,
    EvalSection,
    GenerateSection,
    ModelSection,
    TrainSection,
    _Section,
)
from hpo.config.space import Dimension
from hpo.config.vocabulary import GEN_TUNABLE, LITGPT_LORA_DEFAULTS, TUNABLE, derive_seed


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
        return rules.space_names_fit_kind(raw)

    @model_validator(mode="after")
    def _check_rules(self) -> Params:
        for rule in rules.AFTER_SECTIONS:
            rule(self)
        return self

    def check_model_limits(self, n_embd: int, block_size: int, model: str) -> None:
        """Checks the settings against a model's embedding size and block size (`rules.model_fits`; `model` names
        where those come from in the message). Raises ValueError naming the key, the value and the limit."""
        rules.model_fits(self, n_embd, block_size, model)

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
