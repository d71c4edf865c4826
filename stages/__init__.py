"""Stages: each module is one step that computes, with a pure typed function and a thin CLI.

A trial's stages run two ways, through the same function (docs/design.md#stages): `python -m stages.<name>` under
`dvc repro`, and a warm worker (`hpo.trials.worker`) calling the module's `run(paths, trial_id, *, params,
pruners)`. What differs is in the arguments, never in hidden state: the worker hands in the params it parsed once
for the trial and the live pruners of a study trial (`hpo.trials.pruners.Pruners`); a stage's CLI passes neither,
so the stage parses the params file once and follows only the decisions the trial's record holds. The package
`hpo` never imports this one (dependencies point one way); the flow resolves the stage names a trial kind lists
(`hpo.trials.finetune.STAGES`) to their functions here and hands them to the worker. So does the campaign's
untuned reference (`stages.untuned.untuned(paths, *, params)`, run by a worker's
`hpo.trials.worker.run_campaign_stage`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpo.trials.kinds import StageFunction


def trial_stages() -> dict[str, StageFunction]:
    """Every trial stage's function by its dvc.yaml name: the module's `run`, the function its CLI calls. (The
    modules are imported here rather than with the package, so that `python -m stages.<name>` imports only its
    own stage.)"""
    from stages import generate, merge_lora, score, train_lora

    return {"train_lora": train_lora.run, "merge_lora": merge_lora.run, "score": score.run, "generate": generate.run}
