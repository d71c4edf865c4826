"""Check every input of a campaign before anything is written.

`load_params` checks the params file itself; this module checks what it points at: the data file (every record,
with its line number), the pretraining corpus, a user's model (a litgpt or Hugging Face folder or a GGUF file:
metadata), the lm-eval tasks and metric, and the warm-start sources. Each mistake raises one `InputError` naming
the key or file, the value and what was expected; the CLI turns it into a non-zero exit with nothing under
`campaigns/` changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from hpo.checkpoint import CheckpointError
from hpo.config import UTILITIES, Params
from hpo.convert import check_source
from hpo.data import TEMPLATES, DataError, read_records
from hpo.layout import CampaignPaths, task_dir_dep
from hpo.record.records import trial_stage
from hpo.textfile import TextFileError, read_text
from hpo.utility import load_utility

# The metrics each task template of data/tasks reports.
TEMPLATE_METRICS = {"multiple_choice": ["acc"], "generate_until": ["exact_match"]}


class InputError(ValueError):
    """An input a campaign cannot use; the message names the key or file, the value and what was expected."""


def validate_inputs(params: Params, root: Path = Path(".")) -> None:
    """Checks the data, corpus, checkpoint, tasks, metric and warm-start sources of a campaign.

    Raises:
        InputError: for the first unusable input.
    """
    try:
        records = read_records(root / params.data.path)
    except DataError as err:
        raise InputError(f"data.path: {err}") from None
    if params.data.n_val + params.data.n_eval >= len(records):
        raise InputError(
            f"data.n_val + data.n_eval: got {params.data.n_val} + {params.data.n_eval} for {len(records)} records "
            f"in {params.data.path}; expected fewer, leaving records to train on"
        )
    if params.model.checkpoint_dir is None:
        if params.model.tiny.architecture is not None:
            check_architecture(params)
        corpus = root / params.data.corpus if params.data.corpus else None
        if corpus is None or not corpus.is_file():
            raise InputError(f"data.corpus: {params.data.corpus} not found; expected a text file (one line each)")
        try:
            read_text(corpus)
        except TextFileError as err:
            raise InputError(f"data.corpus: {err}") from None
    elif params.model.trial is not None:  # a complete trial (resolve_model_trial), merged on demand: its adapter
        campaign, trial = params.model.trial.split("/")  # folder holds the same model_config.yaml
        adapter = CampaignPaths(campaign, root).trial(trial).adapter
        if not (adapter / "lit_model.pth.lora").is_file():
            raise InputError(
                f"model.trial: {params.model.trial}'s adapter {adapter} is missing; expected it on disk: rebuild it "
                f"(dvc repro {trial_stage(CampaignPaths(campaign, root), trial, 'train_lora')}) or fetch it (dvc pull)"
            )
        check_checkpoint_limits(params, adapter)
    else:
        try:
            kind, config = check_source(root / params.model.checkpoint_dir, params.model.architecture)
        except CheckpointError as err:
            raise InputError(str(err)) from None
        if kind == "litgpt":
            check_checkpoint_limits(params, root / params.model.checkpoint_dir)
        else:
            try:
                params.check_model_limits(config.n_embd, config.block_size, f"{params.model.checkpoint_dir}")
            except ValueError as err:
                raise InputError(str(err)) from None
    tasks = available_tasks(params, has_choices="choices" in records[0], root=root)
    for task in params.eval.tasks:
        if task not in tasks:
            known = ", ".join(sorted(t for t in tasks if tasks[t] is not None)) or "none"
            raise InputError(f"eval.tasks: unknown task {task!r}; expected one of: {known}")
        metrics = tasks[task]
        if metrics is not None and params.eval.metric not in metrics:
            raise InputError(f"eval.metric: got {params.eval.metric!r}; task {task!r} reports {', '.join(metrics)}")
    if params.campaign.generates and params.generate.utility not in UTILITIES:
        try:
            load_utility(params.generate.utility, root / task_dir_dep(params.eval.task_dir))
        except ValueError as err:
            raise InputError(str(err)) from None
    for name in params.campaign.warm_start.campaigns:
        if not CampaignPaths(name, root).params.is_file():
            raise InputError(f"campaign.warm_start.campaigns: no campaign {name!r} under campaigns/")


def check_scheduler(address: str, timeout: float = 5.0) -> None:
    """Checks that a Dask scheduler answers at `campaign.scheduler` (with the security settings of the user's Dask
    configuration), before the campaign records anything.

    Raises:
        InputError: naming the key and the address when nothing answers within `timeout` seconds.
    """
    import asyncio

    from distributed.comm import connect
    from distributed.security import Security

    async def probe() -> None:
        comm = await connect(address, timeout=timeout, **Security().get_connection_args("client"))
        await comm.close()

    try:
        asyncio.run(probe())
    except Exception as err:  # any failure to connect is the same answer
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(
            f"campaign.scheduler: no Dask scheduler answers at {address} within {timeout:g} s ({why})"
        ) from None


def check_architecture(params: Params) -> None:
    """A named architecture (`model.tiny.architecture`) is one litgpt knows, and the settings fit it."""
    from litgpt import Config

    name = params.model.tiny.architecture
    try:
        config = Config.from_name(str(name))
    except ValueError:
        raise InputError(
            f"model.tiny.architecture: got {name!r}; expected a litgpt configuration name (litgpt.Config.from_name, "
            "e.g. SmolLM2-135M, pythia-160m)"
        ) from None
    try:
        params.check_model_limits(config.n_embd, params.model.tiny.block_size, f"model.tiny ({name})")
    except ValueError as err:
        raise InputError(str(err)) from None


def check_checkpoint_limits(params: Params, checkpoint_dir: Path) -> None:
    """Checks the settings against the user's model (`model_config.yaml`): LoRA rank, sequence length."""
    config_file = checkpoint_dir / "model_config.yaml"
    try:
        config = yaml.safe_load(read_text(config_file)) or {}
        n_embd, block_size = int(config["n_embd"]), int(config["block_size"])
    except (TextFileError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"model.checkpoint_dir: {config_file} does not give n_embd and block_size ({err}); expected litgpt's "
            "model_config.yaml"
        ) from None
    try:
        params.check_model_limits(n_embd, block_size, str(config_file))
    except ValueError as err:
        raise InputError(str(err)) from None


def available_tasks(params: Params, *, has_choices: bool, root: Path = Path(".")) -> dict[str, list[str] | None]:
    """Task name -> the metrics it reports (None where only lm-eval knows: its built-in tasks, groups, tags)."""
    tasks: dict[str, list[str] | None] = {}
    kinds = (["multiple_choice"] if has_choices else []) + ["generate_until"]
    for kind in kinds:
        name = params.data.task_name if kind == "multiple_choice" else f"{params.data.task_name}_gen"
        tasks[name] = TEMPLATE_METRICS[kind]
    if params.eval.task_dir is not None:
        tasks.update(_task_folder(root / params.eval.task_dir, params.eval.tasks, root))
    if params.eval.include_default_tasks:
        from lm_eval.tasks import TaskManager

        tasks.update({t: None for t in TaskManager().all_tasks if t not in tasks})
    return tasks


def _task_folder(folder: Path, requested: Sequence[str] = (), root: Path = Path(".")) -> dict[str, list[str] | None]:
    """The tasks of a user's lm-eval task folder as lm-eval indexes them, each with the metrics of its
    `metric_list` (None for groups and tags).

    The requested tasks must read nothing from outside the folder — included YAMLs, data files, `!function`
    modules (`hpo.tasks.task_inputs`) — since the score stage's DVC dependency is the folder, and their relative
    data paths must be relative to the workspace root, where lm-eval reads them (its working directory).
    """
    from lm_eval.tasks import TaskManager

    from hpo.internals.lm_eval import index_kind, load_task_yaml
    from hpo.tasks import display_path, no_bytecode, task_inputs

    Kind = index_kind()

    def _line(err: Exception) -> str:  # the first line of an error, for a one-line message
        text = str(err).strip().splitlines()
        return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")

    given = display_path(folder, root)
    if not folder.is_dir():
        raise InputError(f"eval.task_dir: {given} is not a folder; expected lm-eval task YAMLs")
    # lm-eval skips a YAML it cannot parse without a word; say which file is broken instead.
    for path in sorted(p for p in folder.rglob("*.yaml") if not {"__pycache__", ".ipynb_checkpoints"} & set(p.parts)):
        try:
            load_task_yaml(path, resolve_func=False, recursive=False)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise InputError(f"eval.task_dir: {path}:{where} is not valid YAML; expected an lm-eval task") from None
        except (OSError, ValueError):  # not a mapping: lm-eval does not index it, nor do we
            continue
    try:
        manager = TaskManager(include_path=str(folder.resolve()), include_defaults=False)
    except Exception as err:  # lm-eval raises many kinds for a broken folder
        raise InputError(f"eval.task_dir: {given} does not load in lm-eval: {_line(err)}") from None
    tasks: dict[str, list[str] | None] = {}
    for name, entry in manager.task_index.items():
        listed = (entry.cfg or {}).get("metric_list") if entry.kind in (Kind.TASK, Kind.PY_TASK) else None
        metrics = [m["metric"] for m in listed if isinstance(m, dict) and "metric" in m] if listed else None
        tasks[name] = metrics or None
    if not tasks:
        raise InputError(f"eval.task_dir: {given} holds no lm-eval task; expected YAML files with a `task:` key")

    inside = folder.resolve()
    for name in (t for t in requested if t in tasks):
        try:
            with no_bytecode():
                inputs = task_inputs(manager, [name], root)
        except Exception as err:  # a `!function` that does not import, an include that is not there, …
            raise InputError(f"eval.task_dir: task {name!r} does not load in lm-eval: {_line(err)}") from None
        for remote in inputs.remote:
            raise InputError(
                f"eval.task_dir: task {name!r}: {display_path(remote.declared_in or folder, root)}: data file "
                f"{remote.written!r} is a URL; expected a file inside {given} (the score stage's DVC dependency)"
            )
        for file in inputs.files:
            yaml_file = display_path(file.declared_in or file.path, root)
            where = f"eval.task_dir: task {name!r}: {yaml_file}"
            written = Path(file.written).expanduser()
            if file.kind == "data" and not file.path.exists():
                beside = (file.declared_in.parent / written) if file.declared_in else None
                if not written.is_absolute() and beside is not None and beside.exists():
                    raise InputError(
                        f"{where}: data file {file.written!r} is relative to the YAML's folder, but lm-eval reads "
                        "relative data_files from its working directory, the workspace root; expected "
                        f"{display_path(beside, root)!r}"
                    )
                raise InputError(
                    f"{where}: data file {file.written!r} not found; expected a path relative to the workspace "
                    f"root (where lm-eval reads data_files from), inside {given}"
                )
            if file.path.is_relative_to(inside):
                continue
            what = {"data": "data file", "module": f"`!function` {file.written} comes from", "yaml": "includes"}
            raise InputError(
                f"{where}: {what[file.kind]} {display_path(file.path, root)}, outside {given}; expected every "
                f"file the task reads inside eval.task_dir (the score stage's DVC dependency)"
            )
    return tasks


__all__ = ["TEMPLATES", "InputError", "check_architecture", "check_scheduler", "validate_inputs"]
