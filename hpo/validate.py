"""Check every input of a campaign before anything is written.

`load_params` checks the params file itself; this module checks what it points at: the data file (every record,
with its line number), the pretraining corpus, a user's litgpt checkpoint folder, the lm-eval tasks and metric,
and the warm-start sources. Each mistake raises one `InputError` naming the key or file, the value and what was
expected; the CLI turns it into a non-zero exit with nothing under `campaigns/` changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpo.checkpoint import CheckpointError, check_checkpoint
from hpo.config import Params
from hpo.data import TEMPLATES, DataError, read_records
from hpo.record.layout import CampaignPaths
from hpo.textfile import TextFileError, read_text

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
        corpus = root / params.data.corpus if params.data.corpus else None
        if corpus is None or not corpus.is_file():
            raise InputError(f"data.corpus: {params.data.corpus} not found; expected a text file (one line each)")
        try:
            read_text(corpus)
        except TextFileError as err:
            raise InputError(f"data.corpus: {err}") from None
    else:
        try:
            check_checkpoint(params.model.checkpoint_dir)
        except CheckpointError as err:
            raise InputError(str(err)) from None
        check_checkpoint_limits(params, root / params.model.checkpoint_dir)
    tasks = available_tasks(params, has_choices="choices" in records[0], root=root)
    for task in params.eval.tasks:
        if task not in tasks:
            known = ", ".join(sorted(t for t in tasks if tasks[t] is not None)) or "none"
            raise InputError(f"eval.tasks: unknown task {task!r}; expected one of: {known}")
        metrics = tasks[task]
        if metrics is not None and params.eval.metric not in metrics:
            raise InputError(f"eval.metric: got {params.eval.metric!r}; task {task!r} reports {', '.join(metrics)}")
    for name in params.campaign.warm_start.campaigns:
        if not CampaignPaths(name, root).trials.is_file():
            raise InputError(f"campaign.warm_start.campaigns: no campaign {name!r} under campaigns/")


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


class _TaskLoader(yaml.SafeLoader):
    """A safe loader that reads lm-eval's `!function module.name` tags as plain strings."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


def available_tasks(params: Params, *, has_choices: bool, root: Path = Path(".")) -> dict[str, list[str] | None]:
    """Task name -> the metrics it reports (None where only lm-eval knows, for its built-in tasks)."""
    tasks: dict[str, list[str] | None] = {}
    kinds = (["multiple_choice"] if has_choices else []) + ["generate_until"]
    for kind in kinds:
        name = params.data.task_name if kind == "multiple_choice" else f"{params.data.task_name}_gen"
        tasks[name] = TEMPLATE_METRICS[kind]
    if params.eval.task_dir is not None:
        tasks.update(_task_folder(root / params.eval.task_dir))
    if params.eval.include_default_tasks:
        from lm_eval.tasks import TaskManager

        tasks.update({t: None for t in TaskManager().all_tasks if t not in tasks})
    return tasks


def _task_folder(folder: Path) -> dict[str, list[str] | None]:
    """The tasks of a user's lm-eval task folder, loaded by lm-eval itself."""
    if not folder.is_dir():
        raise InputError(f"eval.task_dir: {folder} is not a folder; expected lm-eval task YAMLs")
    # lm-eval skips a YAML it cannot parse without a word; say which file is broken instead.
    for path in sorted(folder.rglob("*.yaml")):
        try:
            yaml.load(path.read_text(), Loader=_TaskLoader)  # noqa: S506 (safe loader that keeps !function tags)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise InputError(f"eval.task_dir: {path}:{where} is not valid YAML; expected an lm-eval task") from None
    from lm_eval.tasks import TaskManager

    try:
        manager = TaskManager(include_path=str(folder), include_defaults=False)
    except Exception as err:  # lm-eval raises many kinds for a broken folder
        raise InputError(f"eval.task_dir: {folder} does not load in lm-eval: {err}") from None
    tasks: dict[str, list[str] | None] = {}
    for name in manager.all_tasks:
        info = manager.task_index.get(name, {})
        yaml_path = info.get("yaml_path")
        metrics: list[str] | None = None
        if isinstance(yaml_path, str) and Path(yaml_path).is_file():
            config: Any = yaml.load(Path(yaml_path).read_text(), Loader=_TaskLoader)  # noqa: S506
            listed = (config or {}).get("metric_list") if isinstance(config, dict) else None
            metrics = [m["metric"] for m in listed if isinstance(m, dict) and "metric" in m] if listed else None
        tasks[name] = metrics
    if not tasks:
        raise InputError(f"eval.task_dir: {folder} holds no lm-eval task; expected YAML files with a `task:` key")
    return tasks


__all__ = ["TEMPLATES", "InputError", "validate_inputs"]
