"""untuned: the campaign's base model scored before any tuning — the reference beside the baseline.

The baseline trial is the task tuned with litgpt's default LoRA settings (or sampled at the `generate` section's
settings); this stage says what the model scores with no tuning at all, so a campaign shows whether tuning helped.
It is evaluated exactly as the trials are, with nothing of a trial's: the campaign's tasks and instances, the
evaluation seed every trial records (`params.seeds()["eval"]`), and with `eval.pruner` the campaign's order and
chunks (never stopped), so its `instances.jsonl` pairs with any trial's instance for instance.

- fine-tuning campaign: the base model without an adapter, scored by the score stage's function;
- joint campaign: the base model without an adapter, sampled at the `generate` section's settings with the seeds
  every trial samples with, by the generate stage's function;
- generation campaign: the same as joint. Every trial of it samples the untuned model, and its baseline trial is
  this very configuration: the reference is computed here anyway (one evaluation), so that every kind of campaign
  records it the same way — also without a baseline (`campaign.baseline: false`) — and it equals the baseline's
  score when the baseline was evaluated on every instance. It is sampled on every instance (no inference-budget
  check: a reference, not a candidate).

torch's CPU threads are `campaign.cpu_threads`, else this machine's cores divided by `campaign.workers` (what a
trial proposed now records), set explicitly whether a warm worker or `dvc repro` runs it, so both write the same
bytes (recorded in metrics.json as `threads`).

Writes `campaigns/<c>/untuned/metrics.json` (a DVC metric: score, per-task metrics, lm-eval's manifest, what the
reference is) and `instances.jsonl` (each evaluated instance's value, in evaluation order).
"""

from __future__ import annotations

import json
from typing import Any

from hpo.cache import pin_threads
from hpo.checkpoint import resolve_checkpoint
from hpo.config import Params, derive_seed, load_params
from hpo.files import write_json
from hpo.layout import UNTUNED, CampaignPaths, stage_args
from hpo.search.eval_pruning import instances_jsonl
from hpo.trials.pruners import eval_stop_for
from stages.generate import generate
from stages.score import score_instances

# What the reference is, per campaign kind (metrics.json's `reference`).
REFERENCE = {
    "finetune": "the base model without an adapter, scored as every trial is (same tasks, instances and eval seed)",
    "joint": "the base model without an adapter, sampled at the generate section's settings with every trial's seeds",
    "generate": "the base model at the generate section's settings with every trial's seeds (the baseline trial's "
    "configuration, evaluated on every instance)",
}


Values = list[tuple[tuple[str, int], float]]  # each evaluated instance's value ((task, doc_id), value), in order


def evaluate_untuned(paths: CampaignPaths, params: Params) -> tuple[dict[str, Any], Values]:
    """Evaluates the campaign's base model with no adapter as its trials are evaluated.

    Returns:
        The metrics (those of the score stage, or of the generate stage at the `generate` section's settings) and
        each evaluated instance's value ((task, doc_id), value), in evaluation order.
    """
    seeds = params.seeds()
    base = resolve_checkpoint(paths.base_model, paths.root)
    # with eval.pruner: the campaign's order and chunks, never stopped (the reference is not a candidate)
    instance_wise = eval_stop_for(params, UNTUNED, {}, pruners=None)
    precision = params.train.precision  # the baseline's (no trial's LoRA values)
    if params.campaign.generates:
        settings = params.generate
        metrics, _, _, values = generate(
            checkpoint_dir=base,
            evaluation=params.eval,
            settings=settings,
            task_dir=paths.tasks,
            seed=derive_seed(seeds["generate"], settings.generation_seed),
            eval_seed=seeds["eval"],
            root=paths.root,
            check_budget=False,
            adapter=None,
            precision=precision,
            instance_wise=instance_wise,
        )
        return metrics, values
    return score_instances(
        checkpoint_dir=base,
        evaluation=params.eval,
        task_dir=paths.tasks,
        seed=seeds["eval"],
        root=paths.root,
        adapter=None,
        precision=precision,
        instance_wise=instance_wise,
    )


def untuned(paths: CampaignPaths, *, params: Params | None = None) -> dict[str, Any]:
    """The stage: evaluates the untuned base model and writes `untuned/metrics.json` and `instances.jsonl`; what
    `python -m stages.untuned` and a warm worker (`hpo.trials.worker.run_campaign_stage`) both run. It takes no
    pruners: the reference is never stopped.

    Args:
        paths: the campaign's paths.
        params: the campaign's frozen params, as the caller parsed them; None: read from the campaign's params file.

    Returns:
        The metrics written.
    """
    params = params if params is not None else load_params(paths.params)
    threads = params.trial_threads()
    pin_threads(threads)
    out = paths.untuned
    out.dir.mkdir(parents=True, exist_ok=True)
    # new files, never the old ones rewritten in place (they may be read-only links into DVC's cache); removed
    # first, so that a failed evaluation leaves no earlier result behind
    for path in (out.metrics, out.instances):
        path.unlink(missing_ok=True)
    metrics, values = evaluate_untuned(paths, params)
    metrics = {**metrics, "reference": REFERENCE[params.campaign.kind], "threads": threads}
    out.instances.write_text(instances_jsonl(values))
    write_json(out.metrics, metrics)
    return metrics


def main() -> None:
    paths, _ = stage_args("Score the campaign's base model before any tuning (the untuned reference).", trial=False)
    metrics = untuned(paths)
    print(json.dumps({"score": metrics["score"], "state": metrics["state"]}))


if __name__ == "__main__":
    main()
