"""The campaign's decision records: the files DVC reads to know which trials exist and what they are.

Each trial is recorded in its own folder (`hpo.layout`): its decision (`trial.yaml`: hyperparameters and
seeds, written before it runs — decisions are data), its stages (`dvc.yaml`, rendered from the root dvc.yaml's
trial templates, each depending on exactly its own decision) and its lineage. Recording a trial writes only its
own files, so a trial's bookkeeping costs the same at trial 1,000 as at trial 10, and DVC records it in its own
`dvc.lock`. The workspace registry `campaigns/registry.yaml` lists the campaigns and merges for dvc.yaml's
`foreach` (and, for campaigns recorded before per-trial records, their trials, whose decisions and lineage are the
campaign's `trials.yaml` and `lineage.yaml`: still read, and their stages still expanded). Every write is atomic
and holds the workspace's records lock (`hpo.files`).
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from hpo.config import Params, ParamsError, load_params, merged_model
from hpo.files import read_json, read_yaml, records_lock, write_yaml
from hpo.layout import REGISTRY, UNTUNED, CampaignPaths, task_dir_dep

# The registry sections whose entries dvc.yaml's `foreach` turns into stages: `adapters` → train_lora, `trials` →
# score, `generations` → generate (on the entry's `model` with its `adapter`), `merges` → merge_lora (only the
# trials that need a merged checkpoint: a campaign's best, a trial another campaign starts from, an export); the
# sections a trial of each kind is in, and the stage of each kind that writes the trial's metrics.json (its score)
# with its section. A trial's own dvc.yaml holds the same stages, rendered from the same templates.
SECTIONS = ("adapters", "trials", "generations", "merges")
REGISTRY_SECTIONS = {
    "finetune": ("adapters", "trials"),
    "generate": ("generations",),
    "joint": ("adapters", "generations"),
}
SECTION_STAGE = {"adapters": "train_lora", "trials": "score", "generations": "generate"}
SCORE_STAGE = {"finetune": "score", "generate": "generate", "joint": "generate"}
SCORE_SECTION = {"score": "trials", "generate": "generations"}


def campaign_kind(paths: CampaignPaths) -> str:
    """The frozen `campaign.kind` of a campaign (fine-tuning for campaigns recorded before kinds existed)."""
    return str((read_yaml(paths.params, {}).get("campaign") or {}).get("kind") or "finetune")


def _legacy(path: Path) -> dict[str, Any]:
    """A campaign-wide record of a campaign recorded before per-trial records (`trials.yaml`, `lineage.yaml`),
    parsed once per version of the file: nothing writes them now, and looking up one trial in them (each trial's
    decision or lineage, `trial_ids` at every finish) would otherwise parse the whole file each time. Callers must
    not change what it returns."""
    if not path.is_file():
        return {}
    stat = path.stat()
    return _parsed(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    return read_yaml(Path(path), {})


def trial_ids(paths: CampaignPaths) -> list[str]:
    """The ids of a campaign's trials with a recorded decision, in order (baseline, t000, t001, …)."""
    folders = paths.dir / "trials"
    own = [d.parent.name for d in folders.glob("*/trial.yaml")] if folders.is_dir() else []
    return sorted({*_legacy(paths.trials), *own})


def read_trials(paths: CampaignPaths) -> dict[str, dict[str, Any]]:
    """All recorded trials of a campaign: id -> {params, seeds, …} (each trial's `trial.yaml`, and the campaign's
    `trials.yaml` for trials recorded before per-trial records)."""
    return {tid: _decision(paths, tid) for tid in trial_ids(paths)}


def _decision(paths: CampaignPaths, trial: str) -> Any:
    own = read_yaml(paths.trial(trial).decision, {})
    if trial in own:
        return own[trial]
    return copy.deepcopy(_legacy(paths.trials).get(trial))


def read_trial(paths: CampaignPaths, trial: str) -> dict[str, Any]:
    """One recorded trial; raises KeyError naming the file when it is not recorded."""
    record = _decision(paths, trial)
    if record is None:
        ids = trial_ids(paths)
        recorded = (
            f"{len(ids)} recorded, {ids[0]} … {ids[-1]}" if len(ids) > 2 else f"recorded: {', '.join(ids) or 'none'}"
        )
        raise KeyError(f"{paths.trial(trial).decision}: no trial {trial!r}; {recorded}")
    return dict(record)


def read_lineage(paths: CampaignPaths, trial: str | None = None) -> dict[str, Any]:
    """The lineage of one trial (`trial`), or of every trial: id -> entry (each trial's `lineage.yaml`, and the
    campaign's `lineage.yaml` for trials recorded before per-trial records)."""
    if trial is not None:
        own = paths.trial(trial).lineage
        return dict(read_yaml(own, {}) if own.is_file() else copy.deepcopy(_legacy(paths.lineage).get(trial)) or {})
    entries = read_yaml(paths.lineage, {})
    folders = paths.dir / "trials"
    for own in sorted(folders.glob("*/lineage.yaml")) if folders.is_dir() else []:
        entries[own.parent.name] = read_yaml(own, {})
    return dict(sorted(entries.items()))


# DVC keeps each stage's parameters in dvc.lock and rewrites the whole file with ruamel.yaml's round trip whenever
# a stage is recorded; ruamel writes a float it read in exponent form by truncating, not rounding, its digits, so a
# value such as 2.922339965285824e-05 (a learning rate) loses its last digit at each rewrite and `dvc status` then
# calls the trial changed (measured: 27 % of 17-digit values below 1e-4 drift at the first rewrite, none with 13 or
# fewer significant digits over 10 rewrites). Decisions are therefore recorded with 12 significant digits.
FLOAT_DIGITS = 12


def lock_stable(value: Any) -> Any:
    """A hyperparameter as recorded: floats to `FLOAT_DIGITS` significant digits (the trial trains with that)."""
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}")
    return value


def record_trial(
    paths: CampaignPaths,
    trial: str,
    params: dict[str, Any],
    seeds: dict[str, int],
    threads: int,
    budget: dict[str, Any] | None = None,
) -> None:
    """Writes a trial's decision — hyperparameters, seeds, the torch CPU threads it computes with and, in a
    generation campaign with an inference budget, EcoOptiGen's rule-1 verdict (`budget`) — and its stages (its own
    dvc.yaml, with the task folder its score depends on: the frozen `eval.task_dir`, or `data/tasks`). Only the
    trial's own files are written. A trial recorded before keeps its hyperparameters and threads (it is run again
    as it was)."""
    with records_lock(paths.root):
        recorded = _decision(paths, trial) or {
            "params": {k: lock_stable(v) for k, v in params.items()},
            "budget": budget,
        }
        entry = {"params": recorded["params"], "seeds": seeds, "threads": recorded.get("threads", threads)}
        if recorded.get("budget"):  # a generation campaign's EcoOptiGen decision (rule 1), made before the trial ran
            entry["budget"] = recorded["budget"]
        if recorded.get("pruned"):  # the pruner's decision, made while it trained: a run again stops there too
            entry["pruned"] = recorded["pruned"]
        out = paths.trial(trial)
        write_yaml(out.decision, {trial: entry})
        write_yaml(out.pipeline, trial_pipeline(paths, trial))
        _withdraw_legacy(paths, trial)  # a trial recorded before per-trial records now has its own stages


def trial_pipeline(paths: CampaignPaths, trial: str) -> dict[str, Any]:
    """A trial's own dvc.yaml: the stages of its campaign's kind (train_lora → score, generate, train_lora →
    generate), rendered from the root dvc.yaml's `foreach` templates with the trial's entry (the same entry the
    registry held for trials recorded before per-trial records), run from the workspace (`wdir`)."""
    templates = read_yaml(paths.root / "dvc.yaml", {}).get("stages") or {}
    kind = campaign_kind(paths)
    entry = trial_entry(paths, trial, kind)
    wdir = os.path.relpath(".", CampaignPaths(paths.name).trial(trial).dir)  # the workspace, seen from the trial
    stages = {}
    for section in REGISTRY_SECTIONS[kind]:
        name = SECTION_STAGE[section]
        stages[name] = {"wdir": wdir, **_render(templates[name]["do"], entry, f"dvc.yaml: stages.{name}.do")}
    return {"stages": stages}


def trial_entry(paths: CampaignPaths, trial: str, kind: str) -> dict[str, str]:
    """What a trial's stage templates name (`${item.<key>}`), as paths relative to the workspace: campaign, trial,
    the file of its decision, the task folder its score reads and what its generate stage samples from."""
    relative = CampaignPaths(paths.name)
    task_dir = task_dir_dep((read_yaml(paths.params, {}).get("eval") or {}).get("task_dir"))
    entry = {
        "campaign": relative.name,
        "trial": trial,
        "decisions": relative.trial(trial).decision.as_posix(),
        "task_dir": task_dir,
    }
    return {**entry, **generation_inputs(relative.name, trial, kind)}


def _render(template: Any, entry: dict[str, str], where: str) -> Any:
    """A `foreach` template with `${item.<key>}` replaced by the entry's values (keys and values)."""
    if isinstance(template, dict):
        return {_render(k, entry, where): _render(v, entry, where) for k, v in template.items()}
    if isinstance(template, list):
        return [_render(v, entry, where) for v in template]
    if not isinstance(template, str):
        return template
    for key, value in entry.items():
        template = template.replace(f"${{item.{key}}}", value)
    if "${" in template:
        raise ParamsError(f"{where}: {template!r} names a value a trial's entry does not have ({', '.join(entry)})")
    return template


def _withdraw_legacy(paths: CampaignPaths, trial: str) -> None:
    """Removes a trial's entries from the registry's trial sections, where campaigns recorded before per-trial
    records registered their trials (its stages are now its own dvc.yaml, or none when it failed)."""
    if trial not in _legacy(paths.trials):
        return
    registry = read_registry(paths.root)
    for section in SECTION_STAGE:
        registry[section].pop(stage_key(paths.name, trial), None)
    write_yaml(paths.root / REGISTRY, registry)


def trial_stage(paths: CampaignPaths, trial: str, name: str) -> str:
    """The DVC target of one of a trial's stages: `campaigns/<c>/trials/<t>/dvc.yaml:<name>` (paths relative to
    the workspace), or `<name>@<campaign>-<trial>` for a trial whose stages the root dvc.yaml expands (recorded
    before per-trial records)."""
    own = paths.trial(trial).pipeline
    if own.is_file():
        return f"{CampaignPaths(paths.name).trial(trial).pipeline.as_posix()}:{name}"
    return f"{name}@{stage_key(paths.name, trial)}"


def record_pruning(paths: CampaignPaths, trial: str, decision: dict[str, Any], key: str = "pruned") -> None:
    """Adds a pruner's decision to a trial's record while the stage it stops runs: the training pruner's (`pruned:
    {step, by}`) or the evaluation pruner's (`eval_pruned: {instances, by}`). The stage depends on the record, so
    DVC records the trial with where it stopped and a rebuild stops there."""
    with records_lock(paths.root):  # (a trial that runs was recorded by `record_trial`: it has its own file)
        write_yaml(paths.trial(trial).decision, {trial: {**read_trial(paths, trial), key: decision}})


def record_lineage(paths: CampaignPaths, trial: str, lineage: dict[str, Any], forget: tuple[str, ...] = ()) -> None:
    """Adds to a trial's lineage (its `lineage.yaml`: code revision, library versions, hashes, wall times, costs),
    without the keys in `forget` (what no longer holds)."""
    with records_lock(paths.root):
        entry = {k: v for k, v in {**read_lineage(paths, trial), **lineage}.items() if k not in forget}
        write_yaml(paths.trial(trial).lineage, entry)


def record_failure(paths: CampaignPaths, trial: str, reason: str) -> None:
    """Records a trial that raised and withdraws its stages from DVC (they have no outputs to track)."""
    with records_lock(paths.root):
        failures = read_yaml(paths.failures, {})
        failures[trial] = reason
        write_yaml(paths.failures, failures)
        out = paths.trial(trial)
        for path in (out.pipeline, out.lock):
            path.unlink(missing_ok=True)
        _withdraw_legacy(paths, trial)


def record_untuned_failure(paths: CampaignPaths, reason: str | None) -> None:
    """Records in failures.yaml that the untuned reference's evaluation raised (`untuned: <reason>`; the campaign
    goes on without it), or, with None, forgets such a failure of an earlier run (it has been recorded since)."""
    with records_lock(paths.root):
        failures = read_yaml(paths.failures, {})
        if failures.get(UNTUNED) == reason:
            return
        if reason is None:
            failures.pop(UNTUNED)
        else:
            failures[UNTUNED] = reason
        write_yaml(paths.failures, failures)


def register_campaign(paths: CampaignPaths, params: Params) -> None:
    """Adds the campaign's own stages (prepare_data, base_model, design, untuned, report) to the registry, with the
    files outside the campaign folder that they read (the data file; the corpus or the user's checkpoint; the task
    folder the untuned reference is scored on), and gives each of its trials the task folder its score depends on
    (`task_dir`). Writing the registry also fills in `task_dir` for campaigns and trials recorded by older code
    (see `read_registry`), without which dvc.yaml does not parse."""
    with records_lock(paths.root):
        registry = read_registry(paths.root)
        model_source = params.model.checkpoint_dir or params.data.corpus
        registry["campaigns"][paths.name] = {
            "data": str(params.data.path),
            "model_source": str(model_source),
            "task_dir": task_dir_dep(params.eval.task_dir),
        }
        for section in SECTIONS:
            for entry in registry[section].values():
                if entry.get("campaign") == paths.name:
                    entry["task_dir"] = task_dir_dep(params.eval.task_dir)
        write_yaml(paths.root / REGISTRY, registry)


def generation_inputs(campaign: str, trial: str, kind: str) -> dict[str, str]:
    """What a trial's generate stage samples from (its registry entry's `model` and `adapter`, dependencies of the
    stage): the campaign's base model, with the trial's own LoRA adapter in a joint campaign; a generation
    campaign's trial has no adapter, and its entry names the base model again (DVC takes a dependency listed twice
    as one)."""
    paths = CampaignPaths(campaign)  # relative to the workspace, as dvc.yaml reads the registry
    model = paths.base_model.as_posix()
    return {"model": model, "adapter": paths.trial(trial).adapter.as_posix() if kind == "joint" else model}


def request_merge(paths: CampaignPaths, trial: str, reason: str) -> str:
    """Registers a trial's merge_lora stage (registry `merges`), so that `dvc repro` builds and rebuilds its merged
    checkpoint; `reason` (best, export, `model.trial` of another campaign) is kept beside the first one. Returns
    the stage name to reproduce."""
    key = stage_key(paths.name, trial)
    with records_lock(paths.root):
        registry = read_registry(paths.root)
        if key not in registry["merges"]:
            registry["merges"][key] = {"campaign": paths.name, "trial": trial, "reason": reason}
            write_yaml(paths.root / REGISTRY, registry)
    return f"merge_lora@{key}"


def check_mergeable(source: CampaignPaths, trial: str | None, what: str) -> None:
    """Checks that `trial` of `source` is a complete trial that trained an adapter (what a merge needs); with
    `trial` None, only that the campaign exists and trains.

    Raises:
        ParamsError: starting with `what` (the key or command asking), naming what is missing and what was
            expected: the campaign, a campaign kind that trains, the trial, a complete state.
    """
    name = source.name
    if not source.params.is_file():
        raise ParamsError(f"{what}: no campaign {name!r} (expected {source.params})")
    if campaign_kind(source) == "generate":
        raise ParamsError(
            f"{what}: campaign {name!r} is a generate campaign, whose trials train no model; expected a "
            "finetune or joint campaign"
        )
    if trial is None:
        return
    if trial not in read_trials(source):
        raise ParamsError(f"{what}: campaign {name!r} has no trial {trial!r} ({source.trials})")
    failure = read_yaml(source.failures, {}).get(trial)
    state = "failed" if failure else (read_json(source.trial(trial).metrics) or {}).get("state", "running")
    if state != "complete":
        raise ParamsError(f"{what}: {name}/{trial} is not complete (state: {state}); expected a complete trial")


def read_registry(root: Path = Path(".")) -> dict[str, dict[str, Any]]:
    """The workspace registry with every section present and every entry complete, as the current dvc.yaml reads
    it. A campaign entry without `task_dir` (registered before the untuned stage) gets its frozen params'. Trials are
    in it only when recorded before per-trial records; their entries are completed: a score entry without
    `task_dir` gets its campaign's (from the frozen params), a fine-tuning trial registered before `adapters`
    existed gets its entry there, a generation entry without `model` samples from its campaign's base model, and
    each names its decisions (`trials.yaml`)."""
    registry = read_yaml(root / REGISTRY, {})
    trials = registry.get("trials") or {}
    frozen: dict[str, str] = {}

    def task_dir_of(name: str) -> str:
        if name not in frozen:
            declared = read_yaml(CampaignPaths(name, root).params, {})
            frozen[name] = task_dir_dep((declared.get("eval") or {}).get("task_dir"))
        return frozen[name]

    campaigns = registry.get("campaigns") or {}
    for name, entry in campaigns.items():
        if isinstance(entry, dict) and "task_dir" not in entry:
            entry["task_dir"] = task_dir_of(name)
    for entry in trials.values():
        if isinstance(entry, dict) and "task_dir" not in entry and "campaign" in entry:
            entry["task_dir"] = task_dir_of(entry["campaign"])
    sections = {section: registry.get(section) or {} for section in SECTIONS}
    sections["trials"] = trials
    for key, entry in trials.items():  # a fine-tuning trial registered before `adapters` existed trains there
        sections["adapters"].setdefault(key, dict(entry))
    for entry in sections["generations"].values():  # older entries: no `model`, or a joint trial's merged model
        joint = str(entry.get("model", "")).endswith("/merged") or entry.get("adapter", "").endswith("/adapter")
        entry.update(generation_inputs(entry["campaign"], entry["trial"], "joint" if joint else "generate"))
    for section in SECTION_STAGE:  # their decisions are their campaign's trials.yaml
        for entry in sections[section].values():
            entry.setdefault("decisions", CampaignPaths(entry["campaign"]).trials.as_posix())
    return {"campaigns": campaigns, **sections}


def stage_key(campaign: str, trial: str) -> str:
    """The `foreach` key of a trial's stages: `train_lora@<campaign>-<trial>`."""
    return f"{campaign}-{trial}"


def start_campaign(
    params_file: Path, root: Path = Path("."), params: Params | None = None
) -> tuple[CampaignPaths, Params]:
    """Validates a params file and creates (or reopens) its campaign's record; returns its paths and the
    declaration with `model.trial` resolved.

    The validated declaration is frozen as `campaigns/<name>/params.yaml`. Reopening a campaign with a different
    declaration is refused: its recorded trials would no longer mean what they say.

    Args:
        params_file: the campaign's declaration.
        root: the workspace.
        params: `params_file` parsed and validated already (`campaign run` parses it once); None: parsed here.

    Raises:
        ParamsError: for an invalid params file, or one that changes an existing campaign.
    """
    declared = params if params is not None else load_params(params_file)
    params = resolve_model_trial(declared, root)  # (a resolved declaration resolves to itself)
    paths = CampaignPaths(params.campaign.name, root)
    frozen = params.model_dump(mode="json")
    with records_lock(root):
        started = _start(paths, params, frozen, params_file)
    if params.model.trial is not None:  # its merged checkpoint is built on demand, upstream of the base_model stage
        name, trial = params.model.trial.split("/")
        request_merge(CampaignPaths(name, root), trial, f"model.trial of {paths.name}")
    return started


def resolve_model_trial(params: Params, root: Path = Path(".")) -> Params:
    """The declaration with `model.trial` resolved to one complete trial of an earlier campaign that trains
    (`<campaign>@best`: the best trial its report names now), whose merged model becomes `model.checkpoint_dir`.
    The campaign is recorded with the resolved `<campaign>/<trial>`: its base model does not change when the
    source campaign later finds a better trial (a recorded campaign resumes on the trial `@best` named then). The
    merged model need not exist yet: `start_campaign` registers its merge_lora stage, which `dvc repro` runs
    before the campaign's base_model stage that depends on it.

    Raises:
        ParamsError: naming `model.trial` and what is missing (the campaign, its report, the trial, a complete
            state).
    """
    reference = params.model.trial
    if reference is None:
        return params
    name, _, trial = reference.removesuffix("@best").partition("/")
    source = CampaignPaths(name, root)
    if name == params.campaign.name:
        raise ParamsError(f"model.trial: {reference!r} names this campaign; expected an earlier campaign")
    check_mergeable(source, None, "model.trial")
    recorded = CampaignPaths(params.campaign.name, root).params
    if not trial and recorded.is_file():  # resuming: the trial `@best` named when the campaign started
        frozen = str((read_yaml(recorded, {}).get("model") or {}).get("trial") or "")
        if frozen.partition("/")[0] == name:
            trial = frozen.partition("/")[2]
    if not trial:
        best = (read_json(source.report / "best.json") or {}).get("best")
        if not best:
            raise ParamsError(
                f"model.trial: campaign {name!r} has no best trial yet ({source.report / 'best.json'}); run it "
                "first, or name a trial (<campaign>/<trial>)"
            )
        trial = best["trial"]
    check_mergeable(source, trial, "model.trial")
    resolved = f"{name}/{trial}"
    model = params.model.model_copy(update={"trial": resolved, "checkpoint_dir": merged_model(resolved)})
    return params.model_copy(update={"model": model})


# How a process runs the campaign, not what the campaign is: may differ between runs and processes.
OPERATIONAL = ("workers", "scheduler", "cpu_threads", "max_failures", "storage")


def _identity(params: dict) -> dict:
    campaign = {k: v for k, v in params.get("campaign", {}).items() if k not in OPERATIONAL}
    return {**params, "campaign": campaign}


def _identity_of(recorded: Any) -> dict | None:
    """A recorded params file's identity, or None for content that is not a declaration's mapping."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("campaign", {}), dict):
        return None
    return _identity(recorded)


def _start(paths: CampaignPaths, params: Params, frozen: dict, params_file: Path) -> tuple[CampaignPaths, Params]:
    if paths.params.is_file() and _identity_of(read_yaml(paths.params, {})) != _identity(frozen):
        # through the schema, so a setting added since the campaign was recorded reads as its default (the file
        # as written, the usual case on resume, needs no second parse: it is what `frozen` wrote)
        existing = load_params(paths.params).model_dump(mode="json")
        if _identity(existing) != _identity(frozen):
            changed = sorted(k for k in frozen if _identity(frozen).get(k) != _identity(existing).get(k))
            raise ParamsError(
                f"{params_file}: campaign {paths.name!r} already exists with different settings "
                f"(sections {', '.join(changed)}); expected the same declaration to resume it, "
                "or a new campaign.name"
            )
    if not paths.params.is_file():
        write_yaml(paths.params, frozen)
    for path in (paths.trials, paths.failures, paths.warm_start):
        if not path.is_file():
            write_yaml(path, {})
    paths.untuned.dir.mkdir(parents=True, exist_ok=True)  # a dependency of the report stage, before untuned runs
    register_campaign(paths, params)
    return paths, params
