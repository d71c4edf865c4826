"""The fine-tuning trial kind: train_lora → merge_lora → score, as the stage functions their CLIs call.

A trial kind is the ordered list of its DVC stages (dvc.yaml names) and the function each stage's CLI runs. A warm
worker (`hpo.trials.worker`) calls these functions in its own process; `dvc repro` runs the same ones through
`python -m stages.<name>`, so both write the same bytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from hpo.config import Params
from hpo.record.layout import CampaignPaths
from hpo.trials import cache

Stage = tuple[str, Callable[[CampaignPaths, str], Any]]


def stages() -> list[Stage]:
    """The kind's stages in order: (dvc.yaml stage name, `run(paths, trial_id)` of its module)."""
    from stages import merge_lora, score, train_lora  # imported by the worker that runs them (litgpt, lm-eval)

    return [("train_lora", train_lora.run), ("merge_lora", merge_lora.run), ("score", score.run)]


def progress_total(params: Params, values: dict[str, Any]) -> int | None:
    """What a running trial's progress bar counts to: its optimizer steps."""
    return params.trial_train(values).max_steps


# What the stage modules import only when they first run (litgpt's LoRA script pulls in lightning, torchmetrics
# and transformers: ~9 s here, about a minute on a cluster's shared file system).
LAZY_IMPORTS = (
    "litgpt.__main__",
    "litgpt.finetune.lora",
    "litgpt.scripts.merge_lora",
    "litgpt.generate.base",
    "lm_eval.evaluator",
    "lm_eval.tasks",
    "datasets",
)


def warm_up() -> None:
    """Imports the kind's stage modules and what they import when they first run, so that a worker pays it when
    it starts (while Prefect's server starts and the campaign prepares) rather than in its first trial; then
    keeps what was imported out of the garbage collector's sight (`cache.keep_alive`). Done once per process."""
    global _warm
    if _warm:
        return
    stages()
    for module in LAZY_IMPORTS:
        importlib.import_module(module)
    cache.keep_alive()
    _warm = True


_warm = False
