"""What hpo/internals/lm_eval.py relies on in lm-eval (and in `datasets`, which lm-eval loads task data with): the
private names it touches keep their signatures, and each behaviour it relies on still holds, so that an upgrade of
either library fails here first (see the module's note and docs/design.md#library-internals)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.internals import lm_eval as internals

ROOT = Path(__file__).resolve().parent.parent


def _params_of(func: Callable[..., Any]) -> list[str]:
    """A function's parameter names, `self` and private ones (`_seen`) left out."""
    return [p for p in inspect.signature(func).parameters if p != "self" and not p.startswith("_")]


def _task_folder(folder: Path) -> Path:
    """A task folder as a user writes one: a generate_until task that includes a base YAML and reads local data."""
    folder.mkdir()
    (folder / "data.jsonl").write_text('{"q": "x", "a": "y"}\n{"q": "u", "a": "v"}\n')
    base = {"dataset_path": "json", "output_type": "generate_until", "test_split": "test"}
    base |= {"doc_to_text": "{{q}}", "doc_to_target": "{{a}}", "metric_list": [{"metric": "exact_match"}]}
    base |= {"generation_kwargs": {"until": ["\n"], "max_gen_toks": 4, "do_sample": False}}
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    data = {"test": str(folder / "data.jsonl")}
    task = {"task": "contract_t", "include": "base.yaml", "dataset_kwargs": {"data_files": data}}
    (folder / "contract_t.yaml").write_text(yaml.safe_dump(task))
    return folder


def test_lm_eval_internals_keep_their_signatures() -> None:
    """`load_task_yaml` calls `lm_eval.tasks._yaml_loader.load_yaml(path, resolve_func=…, recursive=…)`;
    `index_kind` returns `lm_eval.tasks._index.Kind`, the kinds of `TaskManager.task_index` entries; `env_info_once`
    swaps `lm_eval.evaluator.add_env_info(storage)`, which only works while `simple_evaluate` looks it up there;
    `loading_tasks` wraps `TaskManager.load(task_list)`, which `simple_evaluate` calls; `request_tokens` calls
    `TemplateLM._encode_pair(context, continuation)`; `packaged_builders` reads datasets' builder names."""
    import lm_eval.evaluator
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
    from lm_eval.api.model import TemplateLM
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import Entry, Kind
    from lm_eval.tasks._yaml_loader import load_yaml

    params = inspect.signature(load_yaml).parameters
    assert list(params)[0] == "path"
    assert all(params[k].kind == inspect.Parameter.KEYWORD_ONLY for k in ("resolve_func", "recursive"))
    assert {"TASK", "PY_TASK", "GROUP", "TAG"} <= {k.name for k in Kind}
    assert internals.index_kind() is Kind
    assert {"kind", "yaml_path", "cfg", "tags"} <= {f.name for f in dataclasses.fields(Entry)}
    simple_evaluate = inspect.unwrap(lm_eval.evaluator.simple_evaluate)
    assert _params_of(lm_eval.evaluator.add_env_info) == ["storage"]
    assert "add_env_info" in simple_evaluate.__code__.co_names
    assert _params_of(TaskManager.load) == ["task_list"]
    assert "load" in simple_evaluate.__code__.co_names
    assert _params_of(TemplateLM._encode_pair) == ["context", "continuation"]
    assert {"json", "csv", "parquet", "text"} <= set(_PACKAGED_DATASETS_MODULES)
    assert {"json", "csv"} <= internals.packaged_builders()


def test_lm_eval_reads_a_task_folder_as_we_record_it(tmp_path: Path) -> None:
    """hpo/tasks.py (`task_inputs` through `load_task_yaml` and `index_kind`): lm-eval's index of a task folder
    has entries with a kind, a YAML path and a config; its YAML loader keeps `include:` unmerged when not
    recursive and merges it otherwise; so the files a task reads are its YAML, the one it includes and its data."""
    from lm_eval.tasks import TaskManager

    from hpo.tasks import task_inputs

    folder = _task_folder(tmp_path / "tasks")
    unmerged = internals.load_task_yaml(folder / "contract_t.yaml", resolve_func=False, recursive=False)
    assert unmerged["include"] == "base.yaml"
    merged = internals.load_task_yaml(folder / "contract_t.yaml", resolve_func=False)
    assert merged["output_type"] == "generate_until" and merged["task"] == "contract_t"
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    entry = manager.task_index["contract_t"]
    assert entry.kind == internals.index_kind().TASK and Path(entry.yaml_path) == folder / "contract_t.yaml"
    assert entry.cfg["task"] == "contract_t"
    inputs = task_inputs(manager, ["contract_t"], tmp_path)
    assert {(f.kind, f.path.name) for f in inputs.files} == {
        ("yaml", "contract_t.yaml"),
        ("yaml", "base.yaml"),
        ("data", "data.jsonl"),
    }


def test_simple_evaluate_loads_its_tasks_through_the_manager_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loading_tasks`: `simple_evaluate` loads the tasks through the manager it is given and builds the requests
    from the tasks `load` returned, after `configure` saw them (`repeats` set there reaches the LM); the wrapper
    is gone afterwards. `env_info_once`: lm-eval's environment is computed once per process, and the results keep
    its keys."""
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    class Echo(LM):  # type: ignore[misc]
        """Answers every generate_until request with its context; counts the requests."""

        def __init__(self) -> None:
            super().__init__()
            self.requests: list[Any] = []

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            self.requests += requests
            return [str(r.args[0]) for r in requests]

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            raise AssertionError("no log-likelihood requests here")

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            raise AssertionError("no rolling requests here")

    environments: list[dict[str, Any]] = []

    def add_env_info(storage: dict[str, Any]) -> None:
        environments.append(storage)
        storage["probe_env"] = "once"

    import lm_eval.evaluator

    monkeypatch.setattr(lm_eval.evaluator, "add_env_info", add_env_info)
    monkeypatch.setattr(internals, "_env_info", {})
    manager = TaskManager(include_path=str(_task_folder(tmp_path / "tasks")), include_defaults=False)
    configured: list[str] = []

    def configure(task: Any) -> None:
        configured.append(task.task_name)
        task.set_config(key="repeats", value=3)

    for run in range(2):
        lm = Echo()
        with internals.loading_tasks(manager, configure) as loaded, internals.env_info_once():
            results = simple_evaluate(model=lm, tasks=["contract_t"], task_manager=manager, bootstrap_iters=0)
        assert results is not None and results["probe_env"] == "once"
        assert list(loaded) == ["contract_t"] and loaded["contract_t"].config.repeats == 3
        assert len(lm.requests) == 2 * 3  # two docs, three repeats each: configured before the requests were built
        assert configured == ["contract_t"] * (run + 1)
        assert "load" not in vars(manager)  # the wrapper was on this object only, and is gone
    assert len(environments) == 1  # computed the first time only
    assert lm_eval.evaluator.add_env_info is add_env_info


def test_request_tokens_are_those_templatelm_scores() -> None:
    """`request_tokens` encodes a log-likelihood request as `TemplateLM.loglikelihood` does (what lm-eval hands
    `_loglikelihood_tokens`): trailing spaces of the context moved to the continuation, an empty context replaced
    by the prefix token, or by the continuation's first token where that is the prefix token."""
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import TemplateLM

    class Chars(TemplateLM):  # type: ignore[misc]
        """One token per character; `^` is the prefix token; keeps what `loglikelihood` hands on."""

        handed: list[Any]

        @property
        def eot_token_id(self) -> int:
            return ord("^")

        def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
            return [ord(c) for c in string]

        def _loglikelihood_tokens(self, requests: list[Any], **kwargs: Any) -> list[tuple[float, bool]]:
            self.handed = requests
            return [(0.0, True)] * len(requests)

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            raise NotImplementedError

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            raise NotImplementedError

    pairs = [("The topic is ", "food"), ("a  ", " b"), ("", "sports"), ("", "^sports")]
    lm = Chars()
    lm.loglikelihood(
        [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=0) for pair in pairs], disable_tqdm=True
    )
    theirs = [(context, continuation) for _, context, continuation in lm.handed]
    assert [internals.request_tokens(lm, *pair) for pair in pairs] == theirs
    assert theirs[1] == ([ord("a")], [ord(c) for c in "   b"]) and theirs[3] == ([ord("^")], [ord(c) for c in "sports"])


def test_fingerprint_is_the_one_datasets_keeps() -> None:
    """`fingerprint`: a `Dataset`'s `_fingerprint`, which changes with its content."""
    from datasets import Dataset

    one, other = Dataset.from_dict({"q": ["x"]}), Dataset.from_dict({"q": ["y"]})
    assert internals.fingerprint(one) == one._fingerprint and isinstance(one._fingerprint, str)
    assert internals.fingerprint(one) != internals.fingerprint(other)
    assert internals.fingerprint(object()) is None


PRIVATE = {"_encode_pair", "add_env_info", "_fingerprint", "_PACKAGED_DATASETS_MODULES"}


def _touches(path: Path) -> list[str]:
    """`file:line what` for each import of a private lm-eval or datasets module or name, and each use of a name
    that the adapter owns, in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in ("lm_eval", "datasets") and any(p.startswith("_") for p in parts[1:]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.attr}")
        if isinstance(node, ast.Constant) and node.value in PRIVATE:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} names {node.value!r}")
    return found


def test_only_the_adapter_touches_lm_eval_internals() -> None:
    adapter = ROOT / "hpo" / "internals" / "lm_eval.py"
    files = [p for folder in ("hpo", "stages", "flows") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert adapter in files and _touches(adapter)  # the check sees what the adapter does
    assert [hit for path in files if path != adapter for hit in _touches(path)] == []
