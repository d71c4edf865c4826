"""Loading a params file: YAML (a key written twice refused) → `Params`, or one `ParamsError` that names the
file, the key, the value and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hpo.config.params import Params
from hpo.config.vocabulary import PRUNERS
from hpo.textfile import TextFileError, read_text


class ParamsError(ValueError):
    """A params file that does not hold a valid campaign; the message names file, key, value and expectation."""


def load_params(path: str | Path) -> Params:
    """Loads and validates a params file.

    Args:
        path: a YAML file with the sections campaign, space, data, model, train, eval.

    Returns:
        The validated, frozen campaign declaration.

    Raises:
        ParamsError: on a missing file, bad YAML or the first invalid value, naming its key.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found; expected a params YAML file")
    try:
        raw = parse_unique_yaml(read_text(path))
    except TextFileError as err:
        raise ParamsError(str(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{path}:{where}: not valid YAML ({problem})") from None
    except DuplicateKeyError as err:
        raise ParamsError(f"{path}: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"{path}: {describe_error(err, raw)}") from None


def describe_error(err: ValidationError, raw: Any) -> str:
    """One line for the first validation error: the dotted key, the value found and what was expected."""
    e = err.errors()[0]
    # Drop pydantic's union tags (the dimension type) so the key reads like the YAML path.
    loc = [str(p) for p in e["loc"]]
    loc = [
        p
        for i, p in enumerate(loc)
        if not (i == 2 and loc[0] == "space" and p in ("float", "int", "categorical"))
        and not (i == 2 and loc[:2] == ["campaign", "pruner"] and p in PRUNERS)
    ]
    key = ".".join(loc) or "(top level)"
    msg = str(e["msg"]).removeprefix("Value error, ")
    if e["type"] == "missing":
        return f"{key}: missing; expected a value"
    if e["type"] == "extra_forbidden":
        return f"{key}: unknown key; expected none of that name here"
    value = e.get("input")
    if not loc:  # a check of the whole file: its message names the key itself
        return msg
    if isinstance(value, dict):
        return f"{key}: {msg}"
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"{key}: got {shown}; expected {msg[0].lower() + msg[1:] if msg else 'a valid value'}"


class DuplicateKeyError(ValueError):
    """A mapping that names the same key twice; the message gives the dotted key and both lines."""


def parse_unique_yaml(text: str) -> Any:
    """YAML text's content, refusing a key written twice in one mapping (YAML keeps the last one silently).

    Raises:
        DuplicateKeyError: naming the dotted key and the lines of both occurrences.
        yaml.YAMLError: for text that is not YAML.
    """
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    stack: list[tuple[Any, str]] = [(node, "")]
    while stack:
        current, prefix = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in current.value:
                key = key_node.value
                dotted = f"{prefix}.{key}" if prefix else str(key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKeyError(f"{dotted}: written twice (lines {seen[key]} and {line}); expected once")
                seen[key] = line
                stack.append((value_node, dotted))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, prefix) for item in current.value)
    return yaml.safe_load(text)
