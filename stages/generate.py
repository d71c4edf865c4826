"""generate: sample a trial's responses with its generation settings and score them (a generation trial's stage).

lm-eval builds the requests of the campaign's generate_until tasks — with the trial's settings merged into each
task's generation_kwargs (lm-eval's own `gen_kwargs` override), `repeats` set to the trial's n and, for a named
prompt template, the task's `doc_to_text` replaced — and the litgpt model samples them (`hpo.evaluation`,
`hpo.generation`: batched, KV-cached, response j of instance i drawn from a generator seeded by (campaign seed,
generation seed, task, i, j)). Every response is then judged on its own by the task's own metric
(`process_results`, e.g. lm-eval's exact_match with the task's normalisation), and the trial's objective is the
utility of those judgements (`generate.utility`, `hpo.utility`), mean over the tasks.

With `eval.pruner`, instances are sampled in the campaign's order a chunk at a time and the pruner asked after each
chunk (`hpo.search.eval_pruning`; asked live only in a warm worker, which hands the stage its `Pruners`:
`hpo.trials.pruners`), on each instance's utility; a trial it stops is `pruned` (with EcoOptiGen's rule 2,
whose growing subsets are cut at the chunks' ends).

Writes `responses.jsonl` (per instance: the prompt's tokens and each response's text, tokens, end and judgement),
`instances.jsonl` (each sampled instance's utility, in the order sampled) and `metrics.json` (score, every utility
per task, the tokens spent, the settings and lm-eval's manifest).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hpo.cache import pin_threads
from hpo.config import TASK_DEFAULT, EvalSection, GenerateSection, Params, derive_seed, load_params
from hpo.evaluation import LitGPTLM, evaluate
from hpo.files import write_json
from hpo.layout import CampaignPaths, stage_args, task_dir_dep
from hpo.record.records import read_trial
from hpo.search.ecooptigen import Budget, budget_record, rule2_reason
from hpo.search.eval_pruning import InstanceWise, eval_reason, evaluation_record, instances_jsonl
from hpo.trials.pruners import Pruners, eval_stop_for
from hpo.utility import UTILITIES, utility


def gen_kwargs(settings: GenerateSection) -> dict[str, Any]:
    """The trial's settings as lm-eval generation_kwargs (merged into each task's own)."""
    kwargs: dict[str, Any] = {
        "do_sample": settings.temperature > 0,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_gen_toks": settings.max_new_tokens,
        "repetition_penalty": settings.repetition_penalty,
        "presence_penalty": settings.presence_penalty,
        "frequency_penalty": settings.frequency_penalty,
    }
    if settings.top_k is not None:
        kwargs["top_k"] = settings.top_k
    if settings.stop != TASK_DEFAULT:
        kwargs["until"] = list(settings.stop_sets[settings.stop])
    return kwargs


def generate(
    checkpoint_dir: Path,
    evaluation: EvalSection,
    settings: GenerateSection,
    task_dir: Path | None,
    seed: int,
    eval_seed: int,
    root: Path = Path("."),
    check_budget: bool = True,
    adapter: Path | None = None,
    precision: str = "32-true",
    instance_wise: InstanceWise | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int], list[tuple[tuple[str, int], float]]]:
    """Samples and scores the campaign's generate_until tasks with one trial's generation settings.

    Args:
        checkpoint_dir: the litgpt checkpoint that generates (the campaign's base model).
        evaluation: the campaign's eval section (generate_until tasks, the per-response metric, limit).
        settings: the trial's generation settings (the `generate` section with the trial's values).
        task_dir: the campaign's task folder.
        seed: seeds every response (with task, instance and response index).
        eval_seed: lm-eval's own seeds (few-shot sampling, random, numpy, torch).
        root: the workspace root (lm-eval reads relative data paths from it).
        check_budget: with `generate.inference_budget`, check it on growing subsets (EcoOptiGen's rule 2); False
            when rule 1 already knows the configuration's n is within budget.
        adapter: a joint trial's LoRA adapter, merged into `checkpoint_dir`'s weights in memory; None: the
            checkpoint as it is.
        precision: `train.precision` (the sampling model's device and dtype: `hpo.placement`).
        instance_wise: with `eval.pruner`, the chunks, order and stop (`hpo.trials.pruners.eval_stop_for`).

    Returns:
        The metrics (`score`: the utility, mean over tasks), one record per instance, what this process
        spent (`reused_responses`: responses this worker had drawn for an earlier trial, EcoOptiGen's rule 3;
        `sampled_tokens`: the response tokens sampled now) — which depends on the worker's history, so it is a
        cost for the lineage, never part of the metrics — and each sampled instance's utility ((task, doc_id),
        value), in the order sampled.

    Raises:
        ValueError: a task that is not generate_until, or that reports no `eval.metric` per response.
    """
    budget = budget_of(settings) if check_budget else None
    prices = prices_of(settings)
    lm = LitGPTLM(
        checkpoint_dir,
        evaluation.batch_size,
        seed,
        settings.batch_size,
        budget,
        prices,
        adapter,
        precision,
        instance_wise=instance_wise,
        chat_template=evaluation.chat_template,
    )
    tasks: dict[str, Any] = {}
    folder = root / task_dir_dep(evaluation.task_dir)  # the user's task folder, a DVC dependency

    def judge(name: str, doc: Any, responses: list[str]) -> list[bool]:
        """Each response judged on its own by the task's metric (lm-eval's `process_results`)."""
        judged = []
        for response in responses:
            values = tasks[name].process_results(doc, [response])
            if evaluation.metric not in values:
                raise ValueError(
                    f"eval.metric: task {name!r} reports no {evaluation.metric!r} per response; it reports "
                    f"{sorted(values)}"
                )
            judged.append(float(values[evaluation.metric]) > 0)
        return judged

    judged_as_sampled: dict[tuple[str, int], list[bool]] = {}  # with eval.pruner: judged once, as sampled

    def instance_utility(instance: tuple[str, int], sampled: tuple[Any, list[str]]) -> float:
        doc, responses = sampled
        judged_as_sampled[instance] = judge(instance[0], doc, responses)
        return utility(settings.utility, [judged_as_sampled[instance]], [[r.strip() for r in responses]], folder)

    if instance_wise is not None:
        instance_wise.judge = instance_utility

    def configure(task: Any) -> None:
        name = task.config.task
        if task.get_config("output_type") != "generate_until":
            raise ValueError(
                f"eval.tasks: {name!r} is a {task.get_config('output_type')} task; a generation campaign needs "
                "generate_until tasks"
            )
        task.set_config(key="repeats", value=settings.n)
        if settings.template != TASK_DEFAULT:
            task.set_config(key="doc_to_text", value=settings.templates[settings.template])
        tasks[name] = task

    results, inputs, datasets = evaluate(
        lm, evaluation, task_dir, eval_seed, root, configure, gen_kwargs(settings), log_samples=True
    )
    per_task: dict[str, dict[str, float]] = {}
    records: list[dict[str, Any]] = []
    values: list[tuple[tuple[str, int], float]] = []
    for name in evaluation.tasks:
        correct: list[list[bool]] = []
        answers: list[list[str]] = []
        for sample in results["samples"][name]:
            if (name, int(sample["doc_id"])) not in lm.usage:
                continue  # not sampled: rule 2 or the evaluation pruner stopped on the instances before it
            responses = list(sample["resps"][0])
            judged = judged_as_sampled.get((name, int(sample["doc_id"])))
            if judged is None:  # (not judged while sampled: no eval.pruner, or sampled after its last full chunk)
                judged = judge(name, sample["doc"], responses)
            correct.append(judged)
            answers.append([r.strip() for r in responses])
            if instance_wise is None:  # each instance's utility (with eval.pruner: computed as it was sampled)
                values.append(
                    ((name, int(sample["doc_id"])), utility(settings.utility, [judged], answers[-1:], folder))
                )
            used = lm.usage[(name, int(sample["doc_id"]))]
            records.append(
                {
                    "task": name,
                    "doc_id": int(sample["doc_id"]),
                    "prompt_tokens": used["prompt_tokens"],
                    "responses": [
                        {**u, "text": text, "correct": ok}
                        for u, text, ok in zip(used["responses"], responses, judged, strict=True)
                    ],
                }
            )
        if not correct:
            continue  # a task after the instances where rule 2 stopped: nothing of it was sampled
        names = UTILITIES if settings.utility in UTILITIES else (*UTILITIES, settings.utility)
        per_task[name] = {u: round(utility(u, correct, answers, folder), 6) for u in names}
    objective = sum(v[settings.utility] for v in per_task.values()) / len(per_task) if per_task else math.nan
    inference_cost = sum(lm.instance_cost(instance) for instance in lm.usage)
    pruned = lm.pruned_after is not None or (instance_wise is not None and instance_wise.stopped_by is not None)
    # what rule 1 learns: over the budget (rule 2 stopped it), within it (it ran to the end, rule 1 knew it, or rule
    # 2 said so before the evaluation pruner stopped it), or nothing (stopped before rule 2's verdict)
    if lm.pruned_after is not None:
        valid: bool | None = False
    elif not pruned or budget is None or any(c["verdict"] == "valid" for c in lm.checks):
        valid = True
    else:
        valid = None
    metrics = {
        "state": "pruned" if pruned else "complete",
        "score": None if pruned else round(objective, 6) if math.isfinite(objective) else None,
        "utility": settings.utility,
        "tasks": per_task,  # of a pruned trial: on the instances it sampled
        "cost": cost(records, inference_cost),
        "budget": budget_record(settings, lm.checks, valid=valid, checked=budget is not None),
        "generation": settings_record(settings),
        "lm_eval": {
            "versions": dict(sorted({**dict.fromkeys(evaluation.tasks), **results.get("versions", {})}.items())),
            "metric": evaluation.metric,
            "seed": eval_seed,
            **lm.manifest,
            "inputs": inputs,
            "datasets": datasets,
        },
    }
    if instance_wise is not None:
        metrics["evaluation"] = evaluation_record(instance_wise)
        values = instance_wise.values
    if pruned:
        metrics["reason"] = (
            eval_reason(instance_wise)
            if lm.pruned_after is None and instance_wise is not None
            else rule2_reason(lm.checks[-1], settings.inference_budget)
        )
        metrics["partial_score"] = round(objective, 6)
    spent = {"reused_responses": lm.reused, "sampled_tokens": lm.sampled_tokens}
    return metrics, records, spent, values


def settings_record(settings: GenerateSection) -> dict[str, Any]:
    """The trial's generation settings as its metrics record them (the chosen stop strings, not every set)."""
    return {
        **{k: v for k, v in settings.model_dump().items() if k not in ("stop_sets", "templates")},
        "until": gen_kwargs(settings).get("until", "task"),
    }


def prices_of(settings: GenerateSection) -> tuple[float, float] | None:
    """The price per 1k input and output tokens (costs in money), or None (costs in tokens)."""
    prices = settings.price_per_1k
    return (prices.input, prices.output) if prices else None


def budget_of(settings: GenerateSection) -> Budget | None:
    """The trial's inference budget B.i, or None when the campaign sets none."""
    if settings.inference_budget is None:
        return None
    return Budget(settings.inference_budget)


def cost(records: list[dict[str, Any]], inference_cost: float) -> dict[str, Any]:
    """A trial's cost: instances and responses sampled, their tokens, and the inference cost (tokens or money)."""
    prompt_tokens = sum(r["prompt_tokens"] for r in records)
    completion_tokens = sum(x["tokens"] for r in records for x in r["responses"])
    return {
        "instances": len(records),
        "responses": sum(len(r["responses"]) for r in records),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "tokens_per_instance": round((prompt_tokens + completion_tokens) / max(1, len(records)), 3),
        "inference_cost": round(inference_cost, 6),
    }


def pruned_without_generation(settings: GenerateSection, reason: str) -> dict[str, Any]:
    """The metrics of a trial that rule 1 pruned before it ran: nothing sampled, nothing spent."""
    return {
        "state": "pruned",
        "score": None,
        "reason": reason,
        "utility": settings.utility,
        "tasks": {},
        "cost": cost([], 0.0),
        "budget": budget_record(settings, [], valid=False, checked=False),
        "generation": settings_record(settings),
    }


def run(
    paths: CampaignPaths, trial_id: str, *, params: Params | None = None, pruners: Pruners | None = None
) -> dict[str, Any]:
    """The stage for one recorded trial: what `python -m stages.generate` and a warm worker both run.

    Args:
        paths: the campaign's paths.
        trial_id: the recorded trial's id.
        params: the campaign's frozen params, as the caller parsed them (a worker parses them once per trial);
            None: read from the campaign's params file.
        pruners: the live pruners a warm worker hands a study trial (`hpo.trials.pruners`); None (`dvc repro`,
            `python -m stages.generate`): only a decision the trial's record holds stops its evaluation early.
    """
    from hpo.checkpoint import resolve_checkpoint

    params = params if params is not None else load_params(paths.params)
    record = read_trial(paths, trial_id)
    pin_threads(record.get("threads"))
    settings = params.trial_generate(record["params"])
    trial = paths.trial(trial_id)
    trial.dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]]
    spent: dict[str, Any]
    values: list[tuple[tuple[str, int], float]] = []
    decided = record.get("budget") or {}  # EcoOptiGen's rule 1, decided and recorded before the trial ran
    trained = json.loads(trial.train_metrics.read_text()) if params.campaign.trains else {"state": "complete"}
    if trained["state"] != "complete":  # a joint trial whose training failed (diverged): nothing to sample from
        metrics, records, spent = {"state": trained["state"], "reason": trained["reason"], "score": None}, [], {}
    elif decided.get("decision") == "prune":
        metrics, records, spent = pruned_without_generation(settings, decided["reason"]), [], {}
    else:
        metrics, records, spent, values = generate(
            resolve_checkpoint(paths.base_model),
            params.eval,
            settings,
            paths.tasks,
            derive_seed(record["seeds"]["generate"], settings.generation_seed),
            record["seeds"]["eval"],
            check_budget=decided.get("decision") != "valid",
            adapter=trial.adapter if params.campaign.trains else None,  # a joint trial samples with its own adapter
            precision=(params.trial_train(record["params"]) if params.campaign.trains else params.train).precision,
            instance_wise=eval_stop_for(params, trial_id, record, pruners),
        )
    # new files, never the old ones rewritten in place: they may be read-only hard links into DVC's cache
    trial.responses.unlink(missing_ok=True)
    with trial.responses.open("w") as f:
        for line in records:
            f.write(json.dumps(line, sort_keys=True) + "\n")
    trial.instances.unlink(missing_ok=True)
    trial.instances.write_text(instances_jsonl(values))
    write_json(trial.metrics, metrics)
    return {**metrics, **spent}


def main() -> None:
    paths, trial_id = stage_args("Sample and score one generation trial with lm-eval.", trial=True)
    result = run(paths, trial_id)
    print(json.dumps({"score": result["score"], "state": result["state"], "cost": result.get("cost")}))


if __name__ == "__main__":
    main()
