"""Task records: the JSON/JSONL format a campaign's data file holds, read and checked record by record.

A record is `{"instruction": str, "output": str, "choices": [str, ...]}` (`choices` optional; when present
`output` must be one of them). The prepare_data stage splits the records; `hpo.validate` checks them before a
campaign starts. `TEMPLATES` is the folder of lm-eval task templates (`data/tasks/`) the data stage renders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpo.textfile import TextFileError, read_text

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
    try:
        text = read_text(path)
    except TextFileError as err:
        raise DataError(str(err)) from None
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
