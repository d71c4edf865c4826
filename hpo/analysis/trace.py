"""Trace one trial back to everything its result depends on, and check that the files on disk still match.

The manifest is assembled from the campaign's record, not stored twice: the decision (params and seeds) from the
trial's `trial.yaml`, the content hashes of data, base model, adapter, metrics and (when merged) the merged model
from `dvc.lock` (DVC's own hashes: the trial's own and the root one), code revision, library versions and wall times
from its `lineage.yaml` (also the Optuna trial's user attributes), training and evaluation settings from the frozen
params and the trial's metrics. `check` asks DVC (`dvc status`) whether each artefact on disk still has its recorded
hash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from hpo.analysis.source import CampaignSource
from hpo.analysis.table import trial_state
from hpo.config import load_params
from hpo.files import read_json, read_yaml
from hpo.layout import UNTUNED, CampaignPaths, TrialPaths, task_dir_dep
from hpo.record.records import (
    SCORE_SECTION,
    SCORE_STAGE,
    campaign_kind,
    read_lineage,
    read_registry,
    read_trial,
    stage_key,
    trial_stage,
)
from hpo.tasks import changed_inputs, score_input_deps

# Each artefact of a trial: the stage that writes it — a campaign's stage (`<name>@{c}`, `merge_lora@{k}`) or one of
# the trial's own stages (`train_lora`, `score`, `generate`) — and where (`hpo.layout`), relative to the
# workspace as dvc.lock records it.
Artefact = tuple[str, Callable[[CampaignPaths, TrialPaths], str]]
ARTEFACTS: dict[str, Artefact] = {
    "data": ("prepare_data@{c}", lambda c, t: c.data.as_posix()),
    "base_model": ("base_model@{c}", lambda c, t: c.base_model.as_posix()),
    "adapter": ("train_lora", lambda c, t: t.adapter.as_posix()),
    "train_metrics": ("train_lora", lambda c, t: t.train_metrics.as_posix()),
    "merged": ("merge_lora@{k}", lambda c, t: t.merged.as_posix()),
    "metrics": ("score", lambda c, t: t.metrics.as_posix()),
    # The files the score read (task YAMLs, data, `!function` modules): DVC dependencies of the score stage, their
    # sha256 recorded in metrics.json's `lm_eval.inputs`; `check` reads their state from `dvc status`.
    "eval_inputs": ("score", lambda c, t: f"{t.metrics.as_posix()}:lm_eval.inputs"),
}
# A generation trial's one stage writes its responses and metrics; the files it read are its dependencies.
GENERATION_ARTEFACTS: dict[str, Artefact] = {
    "data": ARTEFACTS["data"],
    "base_model": ARTEFACTS["base_model"],
    "responses": ("generate", lambda c, t: t.responses.as_posix()),
    "metrics": ("generate", ARTEFACTS["metrics"][1]),
    "eval_inputs": ("generate", ARTEFACTS["eval_inputs"][1]),
}
# A joint trial: the fine-tuning trial's adapter and merged model, then the generation trial's responses on it.
JOINT_ARTEFACTS = {
    **{k: ARTEFACTS[k] for k in ("data", "base_model", "adapter", "train_metrics", "merged")},
    **{k: GENERATION_ARTEFACTS[k] for k in ("responses", "metrics", "eval_inputs")},
}
KIND_ARTEFACTS = {"finetune": ARTEFACTS, "generate": GENERATION_ARTEFACTS, "joint": JOINT_ARTEFACTS}
# The untuned reference (`campaign trace <c> untuned`): the campaign's data and base model, and what its stage wrote.
UNTUNED_ARTEFACTS: dict[str, Artefact] = {
    "data": ARTEFACTS["data"],
    "base_model": ARTEFACTS["base_model"],
    "instances": ("untuned@{c}", lambda c, t: t.instances.as_posix()),
    "metrics": ("untuned@{c}", ARTEFACTS["metrics"][1]),
    "eval_inputs": ("untuned@{c}", ARTEFACTS["eval_inputs"][1]),
}
# Artefacts a trial has only when asked for (`campaign export`, the best trial, `model.trial`): shown when recorded.
ON_DEMAND = ("merged",)


def locked_hashes(paths: CampaignPaths, trial: str) -> dict[str, dict[str, Any]]:
    """The DVC hash (md5, stage, path) of each artefact of a trial (or of the untuned reference), as `dvc.lock`
    records it."""
    source = CampaignSource(paths.name, root=paths.root)
    names = {"c": paths.name, "k": stage_key(paths.name, trial)}
    relative = CampaignPaths(paths.name)  # paths as dvc.lock has them, relative to the workspace
    hashes: dict[str, dict[str, Any]] = {}
    artefacts = UNTUNED_ARTEFACTS if trial == UNTUNED else KIND_ARTEFACTS[campaign_kind(paths)]
    for artefact, (stage_tpl, path_of) in artefacts.items():
        stage = stage_tpl.format(**names) if "@" in stage_tpl else trial_stage(paths, trial, stage_tpl)
        path = path_of(relative, relative.untuned if trial == UNTUNED else relative.trial(trial))
        md5 = source.locked_md5(stage, path)
        if artefact in ON_DEMAND and md5 is None:
            continue  # not asked for: a trial records its adapter, a merge only when needed
        hashes[artefact] = {"stage": stage, "path": path, "md5": md5}
    return hashes


def manifest(paths: CampaignPaths, trial: str) -> dict[str, Any]:
    """Everything a trial's result depends on.

    Args:
        paths: the campaign.
        trial: the trial id (t003, baseline), or `untuned` (the untuned reference: `untuned_manifest`).

    Returns:
        The lineage manifest as a JSON-ready dict.
    """
    params = load_params(paths.params)
    if trial == UNTUNED:
        return untuned_manifest(paths, params)
    record = read_trial(paths, trial)
    out = paths.trial(trial)
    trained = read_json(out.train_metrics) or {}
    scored = read_json(out.metrics) or {}
    failures = read_yaml(paths.failures, {})
    attrs = read_lineage(paths, trial)
    return {
        "campaign": paths.name,
        "trial": trial,
        **dict(zip(("state", "reason"), trial_state(scored or None, failures.get(trial), attrs), strict=True)),
        "params": record["params"],
        "seeds": record["seeds"],
        "code": attrs.get("code"),
        "libraries": attrs.get("libraries"),
        "content_hashes": {"data": attrs.get("data_hash"), "base_model": attrs.get("base_model_hash")},
        "hashes": locked_hashes(paths, trial),
        **_model_source(paths, params),
        **_settings(params, record["params"], trained, scored),
        "evaluation": _evaluation(
            paths, params, scored, trial_stage(paths, trial, SCORE_STAGE[params.campaign.kind]), _task_dir(paths, trial)
        ),
        "score": scored.get("score"),
        "wall_seconds": {
            "trial": attrs.get("wall_seconds"),
            **(attrs.get("stage_seconds") or {}),
        },
    }


def untuned_manifest(paths: CampaignPaths, params: Any) -> dict[str, Any]:
    """What the untuned reference depends on: the seeds every trial evaluates with, the torch threads, the DVC
    hashes of data, base model and what its stage wrote, the evaluation (as a trial's) and its score. It has no
    decision and no lineage of its own (no hyperparameters; no wall times in the record)."""
    scored = read_json(paths.untuned.metrics) or {}
    failure = read_yaml(paths.failures, {}).get(UNTUNED)
    state, reason = trial_state(scored or None, failure, None)
    # the generate section's settings a generating campaign's reference samples at (it trains nothing)
    settings = {"generation": _settings(params, {}, {}, scored)["generation"]} if params.campaign.generates else {}
    return {
        "campaign": paths.name,
        "trial": UNTUNED,
        "state": state,
        "reason": reason,
        "reference": scored.get("reference"),
        "seeds": {k: v for k, v in params.seeds().items() if k in ("eval", "generate")},
        "threads": scored.get("threads"),
        "hashes": locked_hashes(paths, UNTUNED),
        **_model_source(paths, params),
        **settings,
        "evaluation": _evaluation(paths, params, scored, f"{UNTUNED}@{paths.name}", _task_dir(paths, UNTUNED)),
        "score": scored.get("score"),
    }


def _evaluation(paths: CampaignPaths, params: Any, scored: dict[str, Any], stage: str, task_dir: str) -> dict[str, Any]:
    """How a score was evaluated: tasks and their versions, settings, the instances (with eval.pruner), the files it
    read (recorded, and those changed since) and DVC's hashes of its stage's evaluation-input dependencies."""
    lm_eval = scored.get("lm_eval", {})
    return {
        "tasks": {t: (lm_eval.get("versions") or {}).get(t) for t in params.eval.tasks},
        "num_fewshot": params.eval.num_fewshot,
        "limit": params.eval.limit,
        # with eval.pruner: its options, and the instances evaluated, of how many, and who stopped it
        "pruner": params.eval.pruner.model_dump() if params.eval.pruner else None,
        "instances": scored.get("evaluation"),
        "batch_size": params.eval.batch_size,
        "padding_side": lm_eval.get("padding_side"),
        "dtype": lm_eval.get("dtype"),
        "device": lm_eval.get("device"),
        "task_dir": str(params.eval.task_dir) if params.eval.task_dir else None,
        # sha256 of every file the score read, as recorded; those whose content differs on disk now
        "inputs": lm_eval.get("inputs"),
        "inputs_changed": changed_inputs(lm_eval.get("inputs") or {}, paths.root),
        "datasets": lm_eval.get("datasets"),  # hub datasets: path, name, revision, fingerprint per split
        # DVC's hashes of the score stage's evaluation-input dependencies, from dvc.lock
        "dvc_deps": {
            d["path"]: d.get("md5")
            for d in CampaignSource(paths.name, root=paths.root).stage_lock(stage).get("deps", [])
            if d.get("path") in score_input_deps(paths.name, task_dir)
        },
    }


def _model_source(paths: CampaignPaths, params: Any) -> dict[str, Any]:
    """The lineage of a base model that is an earlier campaign's trial (`model.trial`): that trial's own manifest,
    so a chain of campaigns traces back to the first one's data, code and seeds."""
    if params.model.trial is None:
        return {}
    campaign, trial = params.model.trial.split("/")
    return {"base_model_from": manifest(CampaignPaths(campaign, paths.root), trial)}


def _settings(params: Any, values: dict[str, Any], trained: dict[str, Any], scored: dict[str, Any]) -> dict[str, Any]:
    """The trial's training settings (fine-tuning), its generation settings, seed and token costs (generation), or
    both (joint)."""
    settings: dict[str, Any] = {}
    if params.campaign.generates:
        lm_eval = scored.get("lm_eval", {})
        settings["generation"] = {
            **(scored.get("generation") or params.trial_generate(values).model_dump()),
            "seed": lm_eval.get("generation_seed"),
            "batch_size": lm_eval.get("generation_batch_size"),
            "cost": scored.get("cost"),
        }
    if not params.campaign.trains:
        return settings
    train = params.trial_train(values)
    return {
        **settings,
        "training": {
            "precision": train.precision,
            "micro_batch_size": train.micro_batch_size,
            "global_batch_size": train.micro_batch_size * train.gradient_accumulation,
            "max_steps": train.max_steps,
            "tokens_seen": trained.get("tokens"),
            "prompt_style": train.prompt_style,
        },
    }


def check(paths: CampaignPaths, trial: str) -> dict[str, str]:
    """Each artefact's state on disk against its recorded hash, from `dvc status`: `ok`, `modified`, `deleted`,
    `not recorded`, or `unknown` when `dvc status` fails (dvc.yaml or the registry does not parse). The row
    `eval_inputs` is `modified` (or `deleted`) when a dependency of the trial's score stage that holds evaluation
    inputs — the task folder, the evaluation file — changed since the score was recorded."""
    hashes = locked_hashes(paths, trial)
    stages = sorted({h["stage"] for h in hashes.values()})
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json", *stages],
        cwd=paths.root,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        status = json.loads(out.stdout or "{}") if out.returncode == 0 else None
    except json.JSONDecodeError:
        status = None
    changed: dict[str, dict[str, str]] = {}  # stage -> path -> state
    for stage, entries in (status or {}).items():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                for kind in ("changed outs", "changed deps"):
                    for path, state in (entry.get(kind) or {}).items():
                        changed.setdefault(stage, {})[path] = state
    anywhere = {path: state for per_stage in changed.values() for path, state in per_stage.items()}
    result = {}
    for artefact, h in hashes.items():
        if artefact == "eval_inputs":
            if hashes["metrics"]["md5"] is None:
                result[artefact] = "not recorded"
                continue
            deps = score_input_deps(paths.name, _task_dir(paths, trial))
            states = {changed.get(h["stage"], {}).get(d) for d in deps} - {None}
            result[artefact] = (
                "unknown" if status is None else "deleted" if "deleted" in states else "modified" if states else "ok"
            )
        elif h["md5"] is None:
            result[artefact] = "not recorded"
        elif not (paths.root / h["path"]).exists():
            result[artefact] = "deleted"
        else:
            result[artefact] = "unknown" if status is None else anywhere.get(h["path"], "ok")
    return result


def _task_dir(paths: CampaignPaths, trial: str) -> str:
    """The task folder a trial's score stage (or the untuned stage) depends on (the registry's `task_dir`)."""
    registry = read_registry(paths.root)
    if trial == UNTUNED:
        entry = registry["campaigns"].get(paths.name) or {}
    else:
        entry = registry[SCORE_SECTION[SCORE_STAGE[campaign_kind(paths)]]].get(stage_key(paths.name, trial)) or {}
    return entry.get("task_dir") or task_dir_dep(read_yaml(paths.params, {}).get("eval", {}).get("task_dir"))
