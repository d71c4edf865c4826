"""The generation trial kind: one `generate` stage (sample n responses per instance, judge each, score the utility)
on the campaign's base model.

A generation trial is seconds of inference: the worker keeps the imports warm (`warm_up`, shared with the
fine-tuning kind: lm-eval, litgpt) and the stage loads the model from the page cache.
"""

from __future__ import annotations

from typing import Any

from hpo.config import Params
from hpo.trials.finetune import warm_up

__all__ = ["STAGES", "progress_total", "warm_up"]

STAGES = ("generate",)


def progress_total(params: Params, values: dict[str, Any]) -> int | None:
    """What a running trial's progress bar counts to: nothing to count (its stage name is shown)."""
    return None
