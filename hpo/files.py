"""Reading and writing record files: YAML and JSON, atomic writes, and the locks that serialise updates.

Writes are atomic (write a temporary file, then rename), so a crash never leaves a torn record, and every
read-modify-write of a campaign's records holds the workspace's file lock (`filelock`), so threads and processes
sharing a workspace never lose an update.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from hpo.layout import REGISTRY

# libyaml's loader and dumper when PyYAML was built with it: records with thousands of trials load ~10x faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def parse_yaml(text: str, default: Any) -> Any:
    """YAML text's content, or `default` when it is empty."""
    content = yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    return default if content is None else content


def read_yaml(path: Path, default: Any) -> Any:
    """A YAML file's content, or `default` when the file does not exist or is empty."""
    return parse_yaml(path.read_text(), default) if path.is_file() else default


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content (a trial's train.json or metrics.json), or None when it does not exist."""
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, content: Any) -> None:
    """Writes a stage's JSON record (metrics.json) atomically: a process reading it meanwhile (the campaign
    deciding a budget from every trial's costs) sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(content, indent=2) + "\n")
    os.replace(tmp, path)


def write_yaml(path: Path, content: Any) -> None:
    """Writes YAML atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        yaml.dump(content, f, Dumper=_DUMPER, sort_keys=True)
    os.replace(tmp, path)


@cache
def _lock(path: str) -> FileLock:
    return FileLock(path)  # thread-local: threads exclude each other, a thread may re-enter


@contextmanager
def records_lock(root: Path = Path(".")) -> Iterator[None]:
    """Holds the workspace's records lock (re-entrant within a thread)."""
    with file_lock(root / REGISTRY.with_name(".records.lock")):
        yield


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `path` (a lock file) against other threads and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(str(path.resolve())):
        yield


def plain(value: Any) -> Any:
    """numpy and pandas scalars -> Python scalars, NaN -> None, so values serialise to YAML and JSON."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value
