"""The joint trial kind: train_lora → generate, LoRA and generation hyperparameters searched together.

The trial fine-tunes as a fine-tuning trial does, then samples and scores with its own generation settings on the
base model with its own adapter merged in memory (the generate stage's `model` and `adapter` in the registry), so
the objective is the generation utility of the pair (adapter, settings).
"""

from __future__ import annotations

from hpo.trials import finetune, generation
from hpo.trials.finetune import progress_total, warm_up

__all__ = ["STAGES", "progress_total", "warm_up"]

# the fine-tuning kind's training, then the generation kind's stage
STAGES = tuple(name for name in finetune.STAGES if name != "score") + generation.STAGES
