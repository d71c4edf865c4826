"""The generation trial kind: one `generate` stage (sample n responses per instance, judge each, score the utility)
on the campaign's base model, as the stage function its CLI calls.

A generation trial is seconds of inference: the worker keeps the imports warm (`warm_up`, shared with the
fine-tuning kind: lm-eval, litgpt) and the stage loads the model from the page cache.
"""

from __future__ import annotations

from typing import Any

from hpo.config import Params
from hpo.trials.finetune import Stage, warm_up

__all__ = ["progress_total", "stages", "warm_up"]


def stages() -> list[Stage]:
    """The kind's stages in order: (dvc.yaml stage name, `run(paths, trial_id)` of its module)."""
    from stages import generate

    return [("generate", generate.run)]


def progress_total(params: Params, values: dict[str, Any]) -> int | None:
    """What a running trial's progress bar counts to: nothing to count (its stage name is shown)."""
    return None
