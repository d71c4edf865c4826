"""MkDocs hook: renders the params reference from the pydantic schema at build time.

`docs/params.md` holds the marker line `<!-- params-reference -->`; this hook replaces it with one section per
top-level key of `hpo.config.Params` and one table per model below it (every field's name, type, default, bounds
and description, from `model_fields`, `Field(description=...)` and the models' docstrings). A discriminated union
of models (`campaign.pruner`, a `space` dimension) gets one table per variant. Nothing is written by hand, so the
page cannot drift from the code; a missing marker fails the build.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from pydantic import BaseModel

MARKER = "<!-- params-reference -->"
PAGE = "params.md"
ROOT = Path(__file__).resolve().parent.parent


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"docs/{PAGE}: the marker {MARKER} is missing; the params reference has nowhere to go")
    return markdown.replace(MARKER, render())


def render() -> str:
    """The whole reference: one `##` section per top-level key of `Params`, models below it as `###`."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import hpo.config
    from hpo.config import Params

    lines = ["## Sections", "", _table(Params, "")]
    for name, field in Params.model_fields.items():
        lines += ["", f"## `{name}` {{#{name}}}", ""]
        kinds = getattr(hpo.config, "KIND_TUNABLE", None)  # the names a space may use, per campaign.kind
        if name == "space" and kinds:
            lines += ["The names a space may use, by `campaign.kind`:", ""]
            lines += [f"- `{kind}`: " + ", ".join(f"`{n}`" for n in names) for kind, names in kinds.items()]
            lines += ["", "Each name maps to one of these dimensions:", ""]
        models = _models(field.annotation)
        if not models:
            lines.append(_doc(field.description) or "")
            continue
        for path, model, variant in _walk(_key(name, field.annotation), field.annotation):
            if path != name or variant is not None:  # the section's own model sits under its `##` heading
                title = f"`{path}`" + (f" — `{variant}`" if variant else "")
                lines += [f"### {title} {{#{_anchor(path, variant)}}}", ""]
            doc = _doc(model.__doc__)
            if doc:
                lines += [doc, ""]
            lines += [_table(model, path), ""]
    return "\n".join(lines).rstrip() + "\n"


def _walk(path: str, annotation: Any) -> list[tuple[str, type[BaseModel], str | None]]:
    """Every model reachable from a field, depth first: (dotted path, model, the variant's tag or None)."""
    found: list[tuple[str, type[BaseModel], str | None]] = []
    models = _models(annotation)
    for model in models:
        variant = _tag(model) if len(models) > 1 else None
        found.append((path, model, variant))
        for name, field in model.model_fields.items():
            if _models(field.annotation):
                found += _walk(_key(f"{path}.{name}", field.annotation), field.annotation)
    # the same nested model reached through several variants (none today) is shown once
    seen: set[tuple[str, str, str | None]] = set()
    unique = []
    for item in found:
        key = (item[0], item[1].__qualname__, item[2])
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _key(path: str, annotation: Any) -> str:
    """The dotted path of the models under a field: `space.<name>` for a mapping of names to models."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _key(path, typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return next((_key(path, a) for a in typing.get_args(annotation) if a is not type(None)), path)
    return f"{path}.<name>" if origin is dict else path


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (through Optional, unions, Annotated, list and dict values)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if origin is dict:
        return _models(typing.get_args(annotation)[1])
    return []


def _tag(model: type[BaseModel]) -> str | None:
    """A discriminated variant's tag: its one-value Literal field (`name: median`, `type: float`)."""
    for name, field in model.model_fields.items():
        if typing.get_origin(field.annotation) is typing.Literal and len(typing.get_args(field.annotation)) == 1:
            return f"{name}: {typing.get_args(field.annotation)[0]}"
    return model.__name__


def _anchor(path: str, variant: str | None) -> str:
    text = path.replace(".<name>", "") + ("-" + variant.split(": ")[-1] if variant else "")
    return text.replace(".", "-").replace("_", "-").lower()


def _table(model: type[BaseModel], path: str) -> str:
    rows = ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = f"`{path}.{name}`" if path else f"`{name}`"
        nested = _models(field.annotation)
        description = _doc(field.description)
        if not description and nested and len(nested) == 1:
            description = _first_sentence(nested[0].__doc__)
        if nested:
            target = _key(f"{path}.{name}" if path else name, field.annotation)
            single = len(nested) == 1 or not path  # a top-level key links to its own section
            link = f"#{_anchor(target, None if single else _tag(nested[0]))}"
            description = (description + " " if description else "") + f"[See below]({link})."
        rows.append(
            f"| {key} | {_cell(_type(field.annotation))} | {_cell(_default(field))} | "
            f"{_cell(_bounds(field))} | {_cell(description)} |"
        )
    return "\n".join(rows)


def _type(annotation: Any) -> str:
    """A reader's name for a type: `float`, `int or null`, `"tpe" | "gp"`, `list of str`, `mapping str → …`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if inspect.isclass(a) and issubclass(a, BaseModel)]
        if len(models) > 1:
            rest = [a for a in args if a not in models]
            return " or ".join(["one of the mappings below", *(_type(a) for a in rest)])
        return " or ".join(_type(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {_type(args[0])} → {_type(args[1])}" if args else "mapping"
    if annotation is Any:
        return "any"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "mapping"
    if inspect.isclass(annotation) and issubclass(annotation, Path):
        return "path"
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        return " | ".join(json.dumps(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, Enum):
        value = value.value
    return json.dumps(value, ensure_ascii=False, default=str)


def _bounds(field: Any) -> str:
    """The checks pydantic makes on the value itself (ge, gt, le, lt, lengths, pattern)."""
    found = []
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤"}
    for item in field.metadata:
        for attr, symbol in symbols.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{symbol} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            found.append(f"matches `{pattern}`")
    return ", ".join(found)


def _doc(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text).split()) if text else ""


def _first_sentence(text: str | None) -> str:
    doc = _doc(text)
    return doc.split(". ")[0].rstrip(".") + "." if doc else ""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: a pipe is escaped outside code spans (the table extension leaves
    pipes inside backticks alone, and would show the backslash there)."""
    parts = text.replace("\n", " ").split("`")
    return "`".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))
