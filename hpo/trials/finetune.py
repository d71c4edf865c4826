"""The fine-tuning trial kind: train_lora → merge_lora → score, as the stage functions their CLIs call.

A trial kind is the ordered list of its DVC stages (dvc.yaml names) and the function each stage's CLI runs. A warm
worker (`hpo.trials.worker`) calls these functions in its own process; `dvc repro` runs the same ones through
`python -m stages.<name>`, so both write the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hpo.record.layout import CampaignPaths

Stage = tuple[str, Callable[[CampaignPaths, str], Any]]


def stages() -> list[Stage]:
    """The kind's stages in order: (dvc.yaml stage name, `run(paths, trial_id)` of its module)."""
    from stages import merge_lora, score, train_lora  # imported by the worker that runs them (litgpt, lm-eval)

    return [("train_lora", train_lora.run), ("merge_lora", merge_lora.run), ("score", score.run)]
