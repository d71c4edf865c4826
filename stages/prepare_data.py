"""prepare_data: split the task's records into disjoint train/validation/evaluation sets and build the lm-eval
task folder that scores them.

Input is a JSON list or JSONL file of `{"instruction": str, "output": str, "choices": [str, ...]}` records
(`choices` optional; when present `output` must be one of them). Training and validation files follow litgpt's
JSON data module (`train.json`, `val.json`); the evaluation file is JSONL with a `gold` index, read by the
task YAMLs rendered from `data/tasks/` (`dataset_path: json`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

from stages.config import DataSection
from stages.layout import stage_args

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "tasks"


class DataError(ValueError):
    """A data file that cannot be used; the message names the file, the line and what was expected."""


def read_records(path: Path) -> list[dict[str, Any]]:
    """Reads and checks task records from a JSON list or a JSONL file.

    Args:
        path: the data file.

    Returns:
        The records, in file order.

    Raises:
        DataError: naming the file and the line of the first malformed record.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected a JSON or JSONL file of task records")
    text = path.read_text()
    if text.lstrip().startswith("["):
        try:
            items = [(i + 1, r) for i, r in enumerate(json.loads(text))]
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
        where = "record"
    else:
        items = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {lineno}: not valid JSON ({err.msg})") from None
        where = "line"
    records = []
    for n, record in items:
        problem = _check_record(record)
        if problem:
            raise DataError(f"{path}: {where} {n}: {problem}")
        records.append(record)
    if not records:
        raise DataError(f"{path}: no records; expected at least one")
    return records


def _check_record(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"expected an object with 'instruction' and 'output', got {type(record).__name__}"
    for key in ("instruction", "output"):
        if not isinstance(record.get(key), str):
            return f"'{key}' must be a string, got {record.get(key)!r}"
    choices = record.get("choices")
    if choices is not None:
        if not (isinstance(choices, list) and all(isinstance(c, str) for c in choices) and len(choices) >= 2):
            return f"'choices' must be a list of at least two strings, got {choices!r}"
        if record["output"] not in choices:
            return f"'output' {record['output']!r} is not one of 'choices'"
    return None


def prepare_data(data: DataSection, out_dir: Path) -> dict[str, int]:
    """Splits the records and writes the litgpt files and the lm-eval task folder.

    Args:
        data: the campaign's data section.
        out_dir: the folder to write (`train.json`, `val.json`, `eval.jsonl`, `tasks/`).

    Returns:
        The number of records in each split.
    """
    records = read_records(data.path)
    if data.n_val + data.n_eval >= len(records):
        raise DataError(
            f"{data.path}: {len(records)} records; expected more than data.n_val + data.n_eval "
            f"= {data.n_val + data.n_eval}, leaving some for training"
        )
    order = list(range(len(records)))
    random.Random(data.split_seed).shuffle(order)
    evaluation = [records[i] for i in order[: data.n_eval]]
    validation = [records[i] for i in order[data.n_eval : data.n_eval + data.n_val]]
    train = [records[i] for i in order[data.n_eval + data.n_val :]]

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.json", train), ("val.json", validation)):
        rows = [{"instruction": r["instruction"], "input": "", "output": r["output"]} for r in split]
        (out_dir / name).write_text(json.dumps(rows, indent=1) + "\n")
    eval_file = out_dir / "eval.jsonl"
    with eval_file.open("w") as f:
        for r in evaluation:
            row = dict(r)
            if "choices" in r:
                row["gold"] = r["choices"].index(r["output"])
            f.write(json.dumps(row) + "\n")
    write_tasks(data.task_name, eval_file, out_dir / "tasks", multiple_choice="choices" in evaluation[0])
    return {"train": len(train), "val": len(validation), "eval": len(evaluation)}


def write_tasks(task_name: str, eval_file: Path, tasks_dir: Path, *, multiple_choice: bool) -> list[str]:
    """Renders the task YAMLs: `<task>` (multiple choice, when records have choices) and `<task>_gen`."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    written = []
    kinds = [("multiple_choice", task_name)] if multiple_choice else []
    kinds.append(("generate_until", f"{task_name}_gen"))
    for template, name in kinds:
        task = yaml.safe_load((TEMPLATES / f"{template}.yaml").read_text())
        task["task"] = name
        task["dataset_kwargs"]["data_files"]["test"] = str(eval_file)
        (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
        written.append(name)
    return written


def main() -> None:
    paths, _ = stage_args("Split the task data and build its lm-eval task folder.", trial=False)
    counts = prepare_data(paths.load().data, paths.data)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
