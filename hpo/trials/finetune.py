"""The fine-tuning trial kind: train_lora → score (the adapter on the base model, merged in memory).

A trial records its adapter; the merge_lora stage writes a merged checkpoint only for a trial that needs one (the
campaign's best, a trial another campaign starts from, an export: `hpo.record.records.request_merge`).

A trial kind names its DVC stages (dvc.yaml names) in the order a trial runs them. The package never imports the
stage modules (dependencies point one way: `stages/` and `flows/` use `hpo`): the flow hands the worker each
stage's function (`stages.trial_stages()`: the module's `run(paths, trial_id)`), which a warm worker
(`hpo.trials.worker`) calls in its own process; `dvc repro` runs the same ones through `python -m stages.<name>`,
so both write the same bytes.
"""

from __future__ import annotations

import importlib
from typing import Any

from hpo import cache
from hpo.config import Params

STAGES = ("train_lora", "score")


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
    """Imports what the stage functions import when they first run (the stage modules themselves are imported by
    whoever holds their functions: the worker, when the flow's task or warm-up plugin reaches it), so that a
    worker pays it when it starts (while Prefect's server starts and the campaign prepares) rather than in its
    first trial; then keeps what was imported out of the garbage collector's sight (`cache.keep_alive`). Done
    once per process."""
    global _warm
    if _warm:
        return
    for module in LAZY_IMPORTS:
        importlib.import_module(module)
    cache.keep_alive()
    _warm = True


_warm = False
