"""Where this project reaches past lm-eval's public API (lm-eval 0.4.13), and past that of `datasets`, which lm-eval
loads task data with. Nothing else in `hpo`, `stages` or `flows` imports a private lm-eval module, swaps an lm-eval
function or wraps a method of an lm-eval object; the reasons are in docs/design.md#library-internals.

What is touched, what for, and why no public API does it:

- `lm_eval.tasks._yaml_loader.load_yaml(path, *, resolve_func, recursive)` (`load_task_yaml`): a task YAML as
  lm-eval's task index reads it, its `include:`s merged and its `!function`s imported. `hpo.tasks` records the
  files a task reads with it and `hpo.validate` checks a user's task folder with it, so that what is recorded and
  checked is what lm-eval reads. lm-eval has no public function that loads one YAML.
- `lm_eval.tasks._index.Kind` (`index_kind`): what an entry of `TaskManager.task_index` is (task, Python task,
  group, tag). The index is public, the kinds of its entries are not.
- `TaskManager.load`, as `simple_evaluate` calls it (`loading_tasks`): `simple_evaluate` loads its tasks through
  the manager it is given, once, and builds the requests from what `load` returns; it hands back neither the tasks
  (the record keeps their hub datasets' fingerprints) nor a hook before the requests are built (a generation
  trial sets its tasks' `repeats` there). The manager's `load` is wrapped on that one object, for that one call.
- `lm_eval.evaluator.add_env_info(storage)` (`env_info_once`): `simple_evaluate` adds the environment to every
  result by running torch's `collect_env` (pip, nvidia-smi and other subprocesses: 1.3 s of every evaluation
  here), with no switch. It is swapped, for the call, for one that runs it once per process and reuses the answer
  (a worker's environment does not change between trials; the results keep the same keys). This works only while
  `simple_evaluate` looks the name up in `lm_eval.evaluator`'s globals.
- `TemplateLM._encode_pair` and the empty-context rule of `TemplateLM.loglikelihood` (`request_tokens`): the LM
  (`hpo.evaluation.LitGPTLM`) encodes log-likelihood requests itself, so that it can score them an instance at a
  time for the evaluation pruner, and must encode them exactly as `TemplateLM.loglikelihood` (which HFLM uses)
  does. The LM's other overrides (`_loglikelihood_tokens`, `tok_encode`, …) are `TemplateLM`'s abstract methods:
  the interface lm-eval asks a model backend to implement, not internals.
- `datasets.packaged_modules._PACKAGED_DATASETS_MODULES` (`packaged_builders`) and a loaded split's `_fingerprint`
  (`fingerprint`): which `dataset_path`s `datasets.load_dataset` treats as a builder (`json`, `csv`, …) rather
  than a hub dataset or a local folder, and the hash `datasets` keeps of a split's content. `datasets` has no
  public accessor for either.

If lm-eval or datasets change: a moved private module or name fails its import (`ImportError`, `AttributeError`);
changed parameters fail the call (`TypeError`). A `simple_evaluate` that no longer calls the manager's `load`, or
no longer looks `add_env_info` up in its module, silently stops taking effect (no datasets recorded, `repeats`
not set; collect_env runs again each time); a `TemplateLM` that encodes requests differently makes our scores
differ from HFLM's. tests/test_contracts_lm_eval.py checks each signature and each behaviour relied on here, so an
upgrade fails there first; tests/test_peer.py compares the scores with HFLM's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

if TYPE_CHECKING:
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.task import Task
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import Kind

# lm-eval and datasets are imported where used: `hpo.tasks` imports this module, and much of `hpo` imports that
# one for its light functions (lm-eval's task modules pull in `datasets`: ~2 s).


def load_task_yaml(path: Path, *, resolve_func: bool = True, recursive: bool = True) -> dict[str, Any]:
    """A task YAML as lm-eval loads it (`lm_eval.tasks._yaml_loader.load_yaml`): `recursive` merges the YAMLs it
    `include:`s, `resolve_func` imports its `!function`s."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=resolve_func, recursive=recursive)


def index_kind() -> type[Kind]:
    """The kinds of lm-eval's task-index entries (`lm_eval.tasks._index.Kind`: TASK, PY_TASK, GROUP, TAG); each
    entry of `TaskManager.task_index` has one as `.kind`, beside `.yaml_path`, `.cfg` and `.tags`."""
    from lm_eval.tasks._index import Kind

    return Kind


@contextmanager
def loading_tasks(manager: TaskManager, configure: Callable[[Task], None] | None = None) -> Iterator[dict[str, Task]]:
    """While in place, every task that `simple_evaluate(task_manager=manager, …)` loads is passed to `configure`
    (before lm-eval builds its requests) and kept in the yielded dict, by name.

    Args:
        manager: the TaskManager handed to `simple_evaluate`; its `load` is wrapped on this object only.
        configure: called with each loaded task, or None.
    """
    loaded: dict[str, Task] = {}
    load = manager.load

    def recording(task_list: Any) -> Any:
        out = load(task_list)
        if configure is not None:
            for task in out["tasks"].values():
                configure(task)
        loaded.update(out["tasks"])
        return out

    with mock.patch.object(manager, "load", recording):
        yield loaded


_env_info: dict[str, Any] = {}  # what lm-eval's add_env_info gave, once per process


@contextmanager
def env_info_once() -> Iterator[None]:
    """While in place, `simple_evaluate` adds the environment information that lm-eval's `add_env_info` gave the
    first time in this process instead of computing it again."""
    import lm_eval.evaluator

    add_env_info: Callable[[dict[str, Any]], None] = lm_eval.evaluator.add_env_info

    def add(storage: dict[str, Any]) -> None:
        if not _env_info:
            fresh: dict[str, Any] = {}
            add_env_info(fresh)
            _env_info.update(fresh)
        storage.update(_env_info)

    with mock.patch.object(lm_eval.evaluator, "add_env_info", add):
        yield


def request_tokens(lm: TemplateLM, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """A log-likelihood request's context and continuation tokens, as `TemplateLM.loglikelihood` makes them:
    `_encode_pair` (the context's trailing spaces moved to the continuation, the whole encoded and split), or, for
    an empty context, the LM's prefix token as the context (the continuation's first token where it is that
    token)."""
    if context:
        pair: tuple[list[int], list[int]] = lm._encode_pair(context, continuation)
        return pair
    tokens: list[int] = lm.tok_encode(continuation, add_special_tokens=False)
    prefix: int = lm.prefix_token_id
    return ([prefix], tokens) if prefix != tokens[0] else (tokens[:1], tokens[1:])


def packaged_builders() -> set[str]:
    """The `dataset_path`s that `datasets.load_dataset` takes for its packaged builders (`json`, `csv`, `parquet`,
    …), which read `data_files` rather than a hub dataset or a local folder."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return set(_PACKAGED_DATASETS_MODULES)


def fingerprint(split: Any) -> str | None:
    """The hash `datasets` keeps of a loaded split's content and the transforms applied to it (None if it keeps
    none)."""
    return getattr(split, "_fingerprint", None)
