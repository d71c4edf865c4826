"""Every input is checked before anything is written: one message naming the key or file, the value and what
was expected; a non-zero exit; nothing under campaigns/ changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpo.config import load_params
from hpo.validate import InputError, validate_inputs

from .helpers import FOLDER, ROOT, write_task_folder


def _params(ws: Path, **changes: object):
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = ws / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _error(ws: Path, **changes: object) -> str:
    with pytest.raises(InputError) as err:
        validate_inputs(load_params(_params(ws, **changes)), ws)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_default_inputs_are_valid(workspace: Path) -> None:
    validate_inputs(load_params(workspace / "params.yaml"), workspace)


def test_data_file_with_a_malformed_line(workspace: Path) -> None:
    lines = (workspace / "data/tinytopic.jsonl").read_text().splitlines()
    lines[41] = lines[41][:-5]
    (workspace / "bad.jsonl").write_text("\n".join(lines) + "\n")
    message = _error(workspace, data__path="bad.jsonl")
    assert message.startswith("data.path: ") and "bad.jsonl: line 42: not valid JSON" in message
    assert "nope.jsonl: file not found" in _error(workspace, data__path="nope.jsonl")


def test_split_larger_than_the_data(workspace: Path) -> None:
    assert "data.n_val + data.n_eval: got 100 + 5000 for 1600 records" in _error(workspace, data__n_eval=5000)


def test_unknown_task_and_metric(workspace: Path) -> None:
    message = _error(workspace, eval__tasks=["hellaswag"])
    assert message == "eval.tasks: unknown task 'hellaswag'; expected one of: tinytopic, tinytopic_gen"
    message = _error(workspace, eval__metric="f1")
    assert message == "eval.metric: got 'f1'; task 'tinytopic' reports acc"


def test_checkpoint_folder_missing_files(workspace: Path) -> None:
    ckpt = workspace / "ckpt"
    ckpt.mkdir()
    (ckpt / "model_config.yaml").write_text("name: x\n")
    message = _error(workspace, model__checkpoint_dir=str(ckpt))
    assert message == (
        f"model.checkpoint_dir: {ckpt} is missing lit_model.pth, tokenizer_config.json, "
        "tokenizer.json or tokenizer.model"
    )


def test_task_folder_that_does_not_load(workspace: Path) -> None:
    folder = workspace / "tasks"
    folder.mkdir()
    (folder / "broken.yaml").write_text("task: broken\ndataset_path: json\nmetric_list: [unclosed\n")
    message = _error(workspace, eval__task_dir="tasks", eval__tasks=["broken"])
    assert message.startswith("eval.task_dir: ") and "broken.yaml: line 4 is not valid YAML" in message
    empty = workspace / "empty"
    empty.mkdir()
    assert "holds no lm-eval task" in _error(workspace, eval__task_dir="empty")


USER_TASKS = {"eval__task_dir": FOLDER, "eval__tasks": ["topic_mc", "topic_gen"], "eval__metric": "exact_match"}


def test_valid_user_task_folder(workspace: Path) -> None:
    """lm-eval 0.4.13 indexes tasks as `Entry` objects (not dicts): a valid folder passes, with its metrics."""
    write_task_folder(workspace)
    validate_inputs(load_params(_params(workspace, **USER_TASKS)), workspace)
    assert _error(workspace, **{**USER_TASKS, "eval__metric": "acc"}) == (
        "eval.metric: got 'acc'; task 'topic_gen' reports exact_match"
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "topic_mc.yaml",
            f"test: {FOLDER}/data/topic_mc.jsonl",
            "test: data/topic_mc.jsonl",
            f"eval.task_dir: task 'topic_mc': {FOLDER}/topic_mc.yaml: data file 'data/topic_mc.jsonl' is relative "
            "to the YAML's folder, but lm-eval reads relative data_files from its working directory, the workspace "
            f"root; expected '{FOLDER}/data/topic_mc.jsonl'",
        ),
        (
            "topic_gen.yaml",
            f"test: {FOLDER}/data/topic_gen.jsonl",
            "test: data/tinytopic.jsonl",
            f"eval.task_dir: task 'topic_gen': {FOLDER}/topic_gen.yaml: data file data/tinytopic.jsonl, outside "
            f"{FOLDER}; expected every file the task reads inside eval.task_dir (the score stage's DVC dependency)",
        ),
        (
            "topic_gen.yaml",
            f"test: {FOLDER}/data/topic_gen.jsonl",
            "test: elsewhere/topic_gen.jsonl",
            f"eval.task_dir: task 'topic_gen': {FOLDER}/topic_gen.yaml: data file 'elsewhere/topic_gen.jsonl' not "
            f"found; expected a path relative to the workspace root (where lm-eval reads data_files from), inside "
            f"{FOLDER}",
        ),
        (
            "topic_mc.yaml",
            "!function utils.process_docs",
            "!function json.loads",
            f"eval.task_dir: task 'topic_mc': {FOLDER}/topic_mc.yaml: `!function` process_docs comes from ",
        ),
        (
            "topic_mc.yaml",
            "!function utils.process_docs",
            "!function helpers.process_docs",
            "eval.task_dir: task 'topic_mc' does not load in lm-eval: ImportError: Cannot import module 'helpers'",
        ),
        (
            "topic_gen.yaml",
            "include: _common.yaml",
            "include: ../_common.yaml",
            f"eval.task_dir: task 'topic_gen': {FOLDER}/topic_gen.yaml: includes tasks/_common.yaml, outside {FOLDER}",
        ),
    ],
)
def test_user_task_must_read_only_its_folder(workspace: Path, file: str, old: str, new: str, expected: str) -> None:
    folder = write_task_folder(workspace)
    shutil.copy(folder / "_common.yaml", folder.parent / "_common.yaml")  # for the include outside the folder
    _edit(folder / file, old, new)
    message = _error(workspace, **USER_TASKS)
    assert message.startswith(expected), message
    if "`!function`" in expected:
        assert "json/__init__.py, outside tasks/topics; expected every file the task reads inside" in message


def test_a_named_architecture_must_be_litgpts_and_fit_the_settings(workspace: Path) -> None:
    tiny = {"architecture": "NoSuchModel-1B", "vocab_size": 384, "block_size": 64}
    message = _error(workspace, model__tiny=tiny)
    assert message.startswith("model.tiny.architecture: got 'NoSuchModel-1B'; expected a litgpt configuration name")
    space = {"lora_r": {"type": "int", "low": 1, "high": 1024}}  # SmolLM2-135M: n_embd 576
    message = _error(workspace, model__tiny={**tiny, "architecture": "SmolLM2-135M"}, space=space)
    assert message == (
        "space.lora_r.high: got 1024; expected a LoRA rank <= the model's embedding size 576 "
        "(model.tiny (SmolLM2-135M) n_embd)"
    )
    validate_inputs(load_params(ROOT / "params.smollm.yaml"), ROOT)  # the shipped declaration


def test_warm_start_source_missing(workspace: Path) -> None:
    message = _error(workspace, campaign__warm_start={"campaigns": ["earlier"]}, campaign__pruner=None)  # (not both)
    assert message == "campaign.warm_start.campaigns: no campaign 'earlier' under campaigns/"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"space__lora_r__low": 64}, "space.lora_r: "),
        ({"campaign__sampler": "bayes"}, "campaign.sampler: got 'bayes'"),
        ({"data__n_eval": 5000}, "data.n_val + data.n_eval"),
        # nothing listens on port 1: refused within the check's 5 s, before the campaign is recorded
        ({"campaign__scheduler": "tcp://127.0.0.1:1"}, "campaign.scheduler: no Dask scheduler answers at tcp://127.0"),
    ],
)
def test_cli_exits_non_zero_and_writes_nothing(workspace: Path, changes: dict, expected: str) -> None:
    before = sorted(p.relative_to(workspace) for p in (workspace / "campaigns").rglob("*"))
    registry = (workspace / "campaigns/registry.yaml").read_text()
    env = {**os.environ, "PREFECT_HOME": str(workspace / ".prefect")}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--params", str(_params(workspace, **changes))],
        cwd=workspace,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert expected in done.stderr and done.stderr.count("\n") == 1
    assert sorted(p.relative_to(workspace) for p in (workspace / "campaigns").rglob("*")) == before
    assert (workspace / "campaigns/registry.yaml").read_text() == registry
    assert not (workspace / ".prefect").exists() or not json.dumps(done.stdout).count("campaign")
    shutil.rmtree(workspace / ".prefect", ignore_errors=True)


def test_non_utf8_data_and_corpus_name_file_and_offset(workspace: Path) -> None:
    data = (workspace / "data/tinytopic.jsonl").read_bytes()
    at = data.index(b"Topic")
    (workspace / "latin1.jsonl").write_bytes(data[:at] + b"\xe9" + data[at:])
    message = _error(workspace, data__path="latin1.jsonl")
    line = data[:at].count(b"\n") + 1
    assert message == (
        f"data.path: {workspace}/latin1.jsonl: byte {at} (line {line}) is 0xe9, not UTF-8; expected UTF-8 text"
    )
    (workspace / "corpus.txt").write_bytes(b"a fine line\n\xff\xfe bad\n")
    message = _error(workspace, data__corpus="corpus.txt")
    assert message == f"data.corpus: {workspace}/corpus.txt: byte 12 (line 2) is 0xff, not UTF-8; expected UTF-8 text"


def test_checkpoint_limits_come_from_its_model_config(workspace: Path) -> None:
    ckpt = workspace / "ckpt"
    ckpt.mkdir()
    for name in ("lit_model.pth", "tokenizer.json", "tokenizer_config.json"):
        (ckpt / name).write_text("{}")
    (ckpt / "model_config.yaml").write_text("name: small\nn_embd: 16\nblock_size: 128\n")
    message = _error(workspace, model__checkpoint_dir="ckpt")
    assert message == (
        "space.lora_r.high: got 32; expected a LoRA rank <= the model's embedding size 16 "
        f"({workspace}/ckpt/model_config.yaml n_embd)"
    )
    (ckpt / "model_config.yaml").write_text("name: small\n")
    assert "ckpt/model_config.yaml does not give n_embd and block_size" in _error(
        workspace, model__checkpoint_dir="ckpt"
    )


def test_a_users_utility_must_be_a_function_in_the_task_folder(workspace: Path) -> None:
    generation = {"campaign__kind": "joint", "eval__tasks": ["tinytopic_gen"], "eval__metric": "exact_match"}
    message = _error(workspace, **generation, generate__utility="nope.py:best")
    assert message.startswith("generate.utility: ") and "nope.py not found" in message
    (workspace / "data/tasks/mine.py").write_text("def other(correct, answers):\n    return 0.0\n")
    try:
        assert "has no function 'best'" in _error(workspace, **generation, generate__utility="mine.py:best")
        validate_inputs(load_params(_params(workspace, **generation, generate__utility="mine.py:other")), workspace)
    finally:
        (workspace / "data/tasks/mine.py").unlink()
