"""The joint trial kind: train_lora → merge_lora → generate, LoRA and generation hyperparameters searched together.

The trial fine-tunes and merges as a fine-tuning trial does, then samples and scores with its own generation
settings on its own merged model (the generate stage's `model` in the registry), so the objective is the
generation utility of the pair (adapter, settings).
"""

from __future__ import annotations

from hpo.trials import finetune, generation
from hpo.trials.finetune import Stage, progress_total, warm_up

__all__ = ["progress_total", "stages", "warm_up"]


def stages() -> list[Stage]:
    """The kind's stages in order: the fine-tuning kind's training and merge, then the generation kind's stage."""
    trained = [stage for stage in finetune.stages() if stage[0] != "score"]
    return trained + generation.stages()
