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

import yaml

from hpo.config import DataSection, load_params
from hpo.data import TEMPLATES, DataError, read_records
from hpo.layout import stage_args


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
    counts = prepare_data(load_params(paths.params).data, paths.data)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
