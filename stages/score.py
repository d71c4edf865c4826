"""score: evaluate a trial's LoRA adapter on its base model with lm-eval and write the trial's metrics.

The adapter is merged into the base weights in memory (`hpo.checkpoint.merged_state`: the tensors litgpt's
merge_lora would write), so a trial writes, hashes and caches no full copy of the model; the merge_lora stage
writes one only for the trials that need it (the best, a trial another campaign starts from, an export).

lm-eval drives the evaluation (`simple_evaluate` with all four seeds pinned, task YAMLs from the campaign's task
folder and, when asked, lm-eval's built-in tasks such as `mmlu` or `hellaswag`) over litgpt's `GPT` behind
lm-eval's `LM` interface (`hpo.evaluation`): any litgpt checkpoint is scored as it is. A generate_until task is
sampled as its generation_kwargs say (greedy unless `do_sample`), seeded from the evaluation seed.

With `eval.pruner`, the instances are scored in the campaign's order a chunk at a time and the pruner asked after
each chunk (`hpo.search.eval_pruning`; asked live only in a warm worker, which hands the stage its `Pruners`:
`hpo.trials.pruners`); each instance's value is the task's own `process_results` (lm-eval's metric for
one instance). A trial it stops is `pruned`, with no score: `partial_score` is the mean over the instances it
scored. `instances.jsonl` holds every scored instance's value, in the order scored (the pruner pairs a trial with
the best one through it).

The objective (`score`) is the mean of `eval.metric` over `eval.tasks`. metrics.json also records what the score
read: the sha256 of every task YAML, included YAML, data file and `!function` module (`hpo.tasks`), and for
tasks on hub datasets their path, name, revision and `datasets` fingerprints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hpo.cache import pin_threads
from hpo.checkpoint import resolve_checkpoint
from hpo.config import EvalSection, Params, load_params
from hpo.evaluation import LitGPTLM, evaluate
from hpo.files import write_json
from hpo.layout import CampaignPaths, stage_args
from hpo.record.records import read_trial
from hpo.search.eval_pruning import InstanceWise, eval_reason, evaluation_record, instances_jsonl
from hpo.trials.pruners import Pruners, eval_stop_for


def score(
    checkpoint_dir: Path,
    evaluation: EvalSection,
    task_dir: Path | None,
    seed: int,
    root: Path = Path("."),
    adapter: Path | None = None,
    precision: str = "32-true",
) -> dict[str, Any]:
    """Scores a checkpoint, with a LoRA adapter merged in, on the campaign's lm-eval tasks: the metrics of
    `score_instances` (which see), all instances at once."""
    return score_instances(checkpoint_dir, evaluation, task_dir, seed, root, adapter, precision)[0]


def score_instances(
    checkpoint_dir: Path,
    evaluation: EvalSection,
    task_dir: Path | None,
    seed: int,
    root: Path = Path("."),
    adapter: Path | None = None,
    precision: str = "32-true",
    instance_wise: InstanceWise | None = None,
) -> tuple[dict[str, Any], list[tuple[tuple[str, int], float]]]:
    """Scores a checkpoint, with a LoRA adapter merged in, on the campaign's lm-eval tasks, instance by instance.

    Args:
        checkpoint_dir: a complete litgpt checkpoint (the campaign's base model, or any merged checkpoint).
        evaluation: the campaign's eval section (tasks, metric, limit, batch size, few-shot).
        task_dir: folder of task YAMLs to include (the campaign's), or None for lm-eval's built-in tasks only.
        seed: the evaluation seed; lm-eval's random, numpy, torch and few-shot seeds are all set from it.
        root: the workspace root, where lm-eval reads relative data paths from (the working directory under DVC).
        adapter: the trial's adapter folder (trained on `checkpoint_dir`), or None to score the checkpoint alone.
        precision: the trial's `train.precision` (the evaluated model's device and dtype: `hpo.placement`).
        instance_wise: with `eval.pruner`, the chunks, order and stop (`hpo.trials.pruners.eval_stop_for`).

    Returns:
        `{"score": ..., "tasks": {task: {metric: value, metric_stderr: value}}, "lm_eval": {...}}`; `lm_eval`
        records, besides versions, sample counts and the model's settings, the sha256 of every file the tasks read
        (`inputs`: YAMLs and includes, data files, `!function` modules) and each hub dataset's path, name, revision
        and fingerprints (`datasets`); and each scored instance's value ((task, doc_id), value), in the order
        scored.

    Raises:
        KeyError: a task reports no `eval.metric`.
        ValueError: with `eval.pruner`, a task whose metric is not a mean over instances.
    """
    lm = LitGPTLM(
        checkpoint_dir,
        evaluation.batch_size,
        seed,
        adapter=adapter,
        precision=precision,
        instance_wise=instance_wise,
        chat_template=evaluation.chat_template,
    )
    tasks: dict[str, Any] = {}

    def configure(task: Any) -> None:
        name = task.config.task
        tasks[name] = task
        aggregation = task.aggregation().get(evaluation.metric)
        if instance_wise is not None and getattr(aggregation, "__name__", None) != "mean":
            raise ValueError(
                f"eval.pruner: task {name!r} aggregates {evaluation.metric!r} with "
                f"{getattr(aggregation, '__name__', aggregation)!r}; expected a mean over instances (the pruner "
                "compares instances one by one)"
            )

    def judge(instance: tuple[str, int], evaluated: tuple[Any, list[Any]]) -> float:
        doc, results = evaluated
        return float(tasks[instance[0]].process_results(doc, results)[evaluation.metric])

    if instance_wise is not None:
        instance_wise.judge = judge
    results, inputs, datasets = evaluate(lm, evaluation, task_dir, seed, root, configure, log_samples=True)
    if instance_wise is not None:
        evaluated = instance_wise.values
    else:  # lm-eval's own per-instance metric values, in its order
        evaluated = [
            ((name, int(sample["doc_id"])), float(sample[evaluation.metric]))
            for name in sorted(results["samples"])
            for sample in results["samples"][name]
            if evaluation.metric in sample
        ]
    manifest = {
        # every task's and group's version (a group such as mmlu lists each subtask)
        "versions": dict(sorted({**dict.fromkeys(evaluation.tasks), **results.get("versions", {})}.items())),
        "n_samples": {t: results.get("n-samples", {}).get(t, {}).get("effective") for t in evaluation.tasks},
        "num_fewshot": evaluation.num_fewshot,
        "seed": seed,
        **lm.manifest,
        "inputs": inputs,
        "datasets": datasets,
    }
    if instance_wise is not None and instance_wise.stopped_by is not None:
        return {**pruned_score(instance_wise, evaluation.metric), "lm_eval": manifest}, evaluated
    per_task: dict[str, dict[str, float | None]] = {}
    for task in evaluation.tasks:
        values = results["results"].get(task, {})
        metric_key = f"{evaluation.metric},none"
        if metric_key not in values:
            found = sorted(k.split(",")[0] for k in values if not k.startswith("alias"))
            raise KeyError(f"eval.metric: task {task!r} reports no {evaluation.metric!r}; it reports {found}")
        stderr = values.get(f"{evaluation.metric}_stderr,none")
        per_task[task] = {
            evaluation.metric: float(values[metric_key]),
            f"{evaluation.metric}_stderr": float(stderr) if isinstance(stderr, int | float) else None,
        }
    objective = sum(v[evaluation.metric] or 0.0 for v in per_task.values()) / len(per_task)
    metrics = {
        "state": "complete",
        "score": round(objective, 6) if math.isfinite(objective) else None,
        "tasks": per_task,
        "lm_eval": manifest,
    }
    if instance_wise is not None:
        metrics["evaluation"] = evaluation_record(instance_wise)
    return metrics, evaluated


def pruned_score(instance_wise: InstanceWise, metric: str) -> dict[str, Any]:
    """The metrics of a trial the evaluation pruner stopped: no score (a pruned trial is never the best); the mean
    of the instances it scored, per task and over all (`partial_score`), and where it stopped."""
    by_task: dict[str, list[float]] = {}
    for (task, _), value in instance_wise.values:
        by_task.setdefault(task, []).append(value)
    values = [v for _, v in instance_wise.values]
    return {
        "state": "pruned",
        "score": None,
        "reason": eval_reason(instance_wise),
        "partial_score": round(sum(values) / len(values), 6),
        "tasks": {t: {metric: round(sum(v) / len(v), 6)} for t, v in sorted(by_task.items())},
        "evaluation": evaluation_record(instance_wise),
    }


def run(
    paths: CampaignPaths, trial_id: str, *, params: Params | None = None, pruners: Pruners | None = None
) -> dict[str, Any]:
    """The stage for one recorded trial: what `python -m stages.score` and a warm worker both run.

    Args:
        paths: the campaign's paths.
        trial_id: the recorded trial's id.
        params: the campaign's frozen params, as the caller parsed them (a worker parses them once per trial);
            None: read from the campaign's params file.
        pruners: the live pruners a warm worker hands a study trial (`hpo.trials.pruners`); None (`dvc repro`,
            `python -m stages.score`): only a decision the trial's record holds stops its evaluation early.
    """
    params = params if params is not None else load_params(paths.params)
    record = read_trial(paths, trial_id)
    pin_threads(record.get("threads"))
    trial = paths.trial(trial_id)
    trained = json.loads(trial.train_metrics.read_text())
    values: list[tuple[tuple[str, int], float]] = []
    if trained["state"] != "complete":
        result: dict[str, Any] = {"state": trained["state"], "reason": trained["reason"], "score": None}
    else:
        base = resolve_checkpoint(paths.base_model)
        precision = params.trial_train(record["params"]).precision
        result, values = score_instances(
            base,
            params.eval,
            paths.tasks,
            record["seeds"]["eval"],
            adapter=trial.adapter,
            precision=precision,
            instance_wise=eval_stop_for(params, trial_id, record, pruners),
        )
    # new files, never the old ones rewritten in place: they may be read-only hard links into DVC's cache
    trial.instances.unlink(missing_ok=True)
    trial.instances.write_text(instances_jsonl(values))
    write_json(trial.metrics, result)
    return result


def main() -> None:
    paths, trial_id = stage_args("Score one trial's adapter on its base model with lm-eval.", trial=True)
    result = run(paths, trial_id)
    print(json.dumps({"score": result["score"], "state": result["state"]}))


if __name__ == "__main__":
    main()
