"""Which files an lm-eval task reads: the one answer that input validation, the score stage and trace share.

A task's score depends on its YAML and every YAML it `include:`s, the data files it names
(`dataset_kwargs.data_files`, `dataset_kwargs.data_dir`, or a local `dataset_path`), and the Python files of its
`!function`s (`process_docs`, `doc_to_text`, a custom `class`, …). lm-eval's own index and YAML loader find them
(`TaskManager.task_index`, `hpo.internals.lm_eval.load_task_yaml`), so what is recorded is what lm-eval reads.
Relative data paths are resolved as `datasets.load_dataset` resolves them: against the working directory, which
for a DVC stage is the workspace root. A task whose data comes from the Hugging Face hub names no file here; it is
listed with its dataset path, name and pinned revision, and the score stage adds the fingerprint `datasets` gives
the loaded splits.

Not covered: modules that a `!function` module imports in turn (a user task folder is a DVC dependency as a
whole, so files beside the YAMLs are tracked anyway).
"""

from __future__ import annotations

import glob
import hashlib
import inspect
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.internals.lm_eval import fingerprint, index_kind, load_task_yaml, packaged_builders

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager


@dataclass(frozen=True)
class TaskFile:
    """One file a task reads."""

    kind: str  # "yaml" (the task's or an included one), "data", "module" (of a `!function`)
    path: Path  # absolute; for a data path or glob that matches nothing, where it would be
    task: str  # the task, group or tag that reads it
    declared_in: Path | None  # the YAML that names it
    written: str  # as the YAML writes it: the include, the data path, the key of the `!function`


@dataclass(frozen=True)
class HubDataset:
    """A dataset a task loads from the Hugging Face hub (or the user's cache of it)."""

    task: str
    path: str
    name: str | None
    revision: str | None


@dataclass
class TaskInputs:
    """Everything the named tasks read: local files, and hub datasets (identified by path, name, revision)."""

    files: list[TaskFile] = field(default_factory=list)
    datasets: list[HubDataset] = field(default_factory=list)
    remote: list[TaskFile] = field(default_factory=list)  # data files named by URL

    def paths(self) -> list[Path]:
        """The distinct local files, sorted."""
        return sorted({f.path for f in self.files})


@contextmanager
def no_bytecode() -> Iterator[None]:
    """Imports without writing `__pycache__`: a task folder is a DVC dependency, and a `.pyc` written into it
    (its bytes hold the source's mtime) would change the folder's hash."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def task_inputs(manager: TaskManager, names: Iterable[str], root: Path = Path(".")) -> TaskInputs:
    """The files and hub datasets that the named tasks (tasks, groups or tags) read.

    Args:
        manager: an `lm_eval.tasks.TaskManager` that knows the tasks.
        names: task, group or tag names, as `eval.tasks` lists them.
        root: the directory relative data paths are read from (the workspace root, where DVC runs stages).

    Returns:
        The YAMLs (includes too), data files and `!function` modules, and the hub datasets.

    Raises:
        KeyError: a name the manager does not know.
        Exception: whatever lm-eval's YAML loader raises for a YAML or `!function` it cannot load.
    """
    out = TaskInputs()
    seen: set[str] = set()
    for name in names:
        _collect(manager.task_index, name, Path(root).resolve(), out, seen)
    out.files = sorted(set(out.files), key=lambda f: (f.path, f.kind, f.task, f.written))
    return out


def _collect(index: dict[str, Any], name: str, root: Path, out: TaskInputs, seen: set[str]) -> None:
    if name in seen:
        return
    seen.add(name)
    if name not in index:
        raise KeyError(f"lm-eval task {name!r} is not indexed")
    Kind = index_kind()
    entry = index[name]
    if entry.kind == Kind.TAG:
        for member in sorted(entry.tags):
            _collect(index, member, root, out, seen)
        return
    if entry.yaml_path is not None:
        yaml_path = Path(entry.yaml_path).expanduser().resolve()
        out.files.extend(_yaml_chain(yaml_path, name, None, yaml_path.name))
        with no_bytecode():
            cfg = load_task_yaml(yaml_path, resolve_func=True)
    else:
        yaml_path, cfg = None, dict(entry.cfg or {})
    for key, obj in _callables(cfg):
        source = _source_file(obj)
        if source is not None:
            out.files.append(TaskFile("module", source, name, yaml_path, key))
    for data in _dataset_configs(cfg):
        _data_inputs(data, name, yaml_path, root, out)
    if entry.kind == Kind.GROUP:
        for member in cfg.get("task") or []:
            ref = member if isinstance(member, str) else member.get("task") or member.get("group")
            if isinstance(ref, str) and ref in index:
                _collect(index, ref, root, out, seen)


def _yaml_chain(path: Path, task: str, declared_in: Path | None, written: str) -> list[TaskFile]:
    """A YAML and, depth first, every YAML it includes (paths relative to the including YAML, as lm-eval reads)."""
    files = [TaskFile("yaml", path, task, declared_in, written)]
    raw = load_task_yaml(path, resolve_func=False, recursive=False) if path.is_file() else {}
    includes = raw.get("include") or []
    for inc in includes if isinstance(includes, list) else [includes]:
        target = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        files += _yaml_chain(target.resolve(), task, path, str(inc))
    return files


def _callables(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, object) for every function or class a resolved config holds (its `!function`s)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _callables(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _callables(v, f"{key}[{i}]")
    elif callable(value):
        yield key, value


def _source_file(obj: Any) -> Path | None:
    try:
        source = inspect.getsourcefile(obj)
    except TypeError:  # a builtin
        source = None
    if source is None:
        source = getattr(sys.modules.get(getattr(obj, "__module__", "") or ""), "__file__", None)
    return Path(source).resolve() if source else None


def _dataset_configs(value: Any) -> Iterator[dict[str, Any]]:
    """Every mapping of a config that says where data comes from (a task; a group's inline tasks and overrides)."""
    if isinstance(value, dict):
        if "dataset_path" in value or "dataset_kwargs" in value:
            yield value
        for v in value.values():
            yield from _dataset_configs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _dataset_configs(v)


def hub_dataset(dataset_path: Any, root: Path = Path(".")) -> bool:
    """Whether `datasets.load_dataset(path=dataset_path, …)` reads the hub: not a packaged builder (`json`,
    `csv`, …, which read `data_files`) and not a local file or folder."""
    if not isinstance(dataset_path, str) or not dataset_path:
        return False
    local = Path(dataset_path).expanduser()
    return dataset_path not in packaged_builders() and not (local if local.is_absolute() else root / local).exists()


def _data_inputs(cfg: dict[str, Any], task: str, yaml_path: Path | None, root: Path, out: TaskInputs) -> None:
    dataset_path = cfg.get("dataset_path")
    kwargs = cfg.get("dataset_kwargs") or {}
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    if hub_dataset(dataset_path, root):
        revision = kwargs.get("revision")
        name = cfg.get("dataset_name")
        out.datasets.append(
            HubDataset(task, str(dataset_path), str(name) if name else None, str(revision) if revision else None)
        )
    elif isinstance(dataset_path, str) and dataset_path and dataset_path not in packaged_builders():
        out.files.extend(_local_files(dataset_path, root, task, yaml_path))  # a local dataset folder or script
    data_dir = kwargs.get("data_dir")
    base = root
    if isinstance(data_dir, str) and data_dir:
        out.files.extend(_local_files(data_dir, root, task, yaml_path))
        base = _absolute(data_dir, root)
    for written in _flatten(kwargs.get("data_files")):
        if "://" in written:
            out.remote.append(TaskFile("data", Path(written), task, yaml_path, written))
        else:
            out.files.extend(_local_files(written, base, task, yaml_path))


def _flatten(data_files: Any) -> list[str]:
    """The paths of a `data_files` value: a path, a list of them, or a mapping of split -> path(s)."""
    if isinstance(data_files, dict):
        return [p for v in data_files.values() for p in _flatten(v)]
    if isinstance(data_files, list | tuple):
        return [str(p) for p in data_files]
    return [str(data_files)] if data_files else []


def _absolute(written: str, base: Path) -> Path:
    path = Path(written).expanduser()
    return path if path.is_absolute() else base / path


def _local_files(written: str, base: Path, task: str, yaml_path: Path | None) -> list[TaskFile]:
    """The files a local data path names: the file, every file of a folder, or every match of a glob."""
    path = _absolute(written, base)
    matches = [Path(p) for p in glob.glob(str(path), recursive=True)] if glob.has_magic(str(path)) else [path]
    found: list[Path] = []
    for match in matches:
        found += sorted(p for p in match.rglob("*") if p.is_file()) if match.is_dir() else [match]
    found = found or [path]  # nothing there: keep where lm-eval would look, for validation to name
    return [TaskFile("data", p.resolve(), task, yaml_path, written) for p in found]


def sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def display_path(path: Path, root: Path = Path(".")) -> str:
    """How a file is named in the record: relative to the workspace root, `lm_eval/…` for lm-eval's own task
    files, else absolute — the same on every machine for the files that can be the same."""
    path = path.resolve()
    for base in (_lm_eval_dir().parent, Path(root).resolve()):  # lm-eval first: a venv may sit in the workspace
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return path.as_posix()


def _lm_eval_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).resolve().parent


def input_hashes(inputs: TaskInputs, root: Path = Path(".")) -> dict[str, str]:
    """{file as `display_path` names it: sha256} of every local file the tasks read, sorted by name; a file that
    is missing maps to `missing`."""
    hashes = {display_path(p, root): (sha256(p) if p.is_file() else "missing") for p in inputs.paths()}
    return dict(sorted(hashes.items()))


def dataset_record(task: Any, root: Path = Path(".")) -> dict[str, Any] | None:
    """For a loaded lm-eval task whose dataset comes from the hub: its path, name, pinned revision and the
    fingerprint `datasets` gives each loaded split (None for a task with local data)."""
    config = task.config
    if not hub_dataset(getattr(config, "dataset_path", None), root):
        return None
    kwargs = getattr(config, "dataset_kwargs", None) or {}
    dataset: Any = getattr(task, "dataset", None)
    splits = list(dataset.items()) if isinstance(dataset, dict) else []  # a DatasetDict: split -> Dataset
    return {
        "path": config.dataset_path,
        "name": getattr(config, "dataset_name", None),
        "revision": kwargs.get("revision"),
        "fingerprint": {str(split): fingerprint(ds) for split, ds in sorted(splits)},
    }


def recorded_path(name: str, root: Path = Path(".")) -> Path:
    """The file a `display_path` name stands for on this machine."""
    path = Path(name)
    if path.is_absolute():
        return path
    if path.parts[:1] == ("lm_eval",):
        return _lm_eval_dir().parent / path
    return Path(root) / path


def changed_inputs(recorded: dict[str, str], root: Path = Path(".")) -> list[str]:
    """The files of a recorded `inputs` map ({name: sha256}) whose content on disk differs now, or that are gone."""
    changed = []
    for name, digest in sorted(recorded.items()):
        path = recorded_path(name, root)
        if not path.is_file() or sha256(path) != digest:
            changed.append(name)
    return changed


def score_input_deps(campaign: str, task_dir: str) -> list[str]:
    """The score stage's DVC dependencies (dvc.yaml) that hold evaluation inputs: the campaign's rendered task
    folder and evaluation file, and the registry's `task_dir`."""
    return [f"campaigns/{campaign}/data/tasks", f"campaigns/{campaign}/data/eval.jsonl", task_dir]
