"""A user's lm-eval task folder (`eval.task_dir`): validated with lm-eval's own loader, every file its tasks read
recorded (DVC dependency of the score stage, sha256 in metrics.json), and a changed data file makes the trial's
score stale in `dvc status` and `campaign trace`.

The folder is written the way lm-eval's docs write tasks (arc_easy.yaml's style): `dataset_path: json` with
`dataset_kwargs.data_files`, `doc_to_text` / `doc_to_choice` / `doc_to_target`, `metric_list`, `metadata.version`;
one multiple-choice task with `process_docs: !function utils.process_docs` from a utils.py beside it, one
generate_until task that `include:`s a shared YAML; the data files (JSONL of TinyTopic records) inside the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from hpo.config import load_params
from hpo.record.layout import CampaignPaths
from hpo.record.records import read_registry, register_campaign
from hpo.tasks import dataset_record, input_hashes, task_inputs

from .conftest import ROOT, make_workspace

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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_task_inputs_of_a_user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.tasks import TaskManager

    from hpo.validate import _task_folder

    folder = write_task_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    tasks = _task_folder(Path(FOLDER), ["topics"], Path("."))
    assert tasks == {"topic_mc": ["acc", "exact_match"], "topic_gen": ["exact_match"], "topics": None}
    manager = TaskManager(include_path=FOLDER, include_defaults=False)
    inputs = task_inputs(manager, ["topics"])  # the tag: both its tasks
    kinds = {(f.kind, f.path.relative_to(folder.resolve()).as_posix()) for f in inputs.files}
    assert kinds == {
        ("yaml", "topic_mc.yaml"),
        ("yaml", "topic_gen.yaml"),
        ("yaml", "_common.yaml"),
        ("module", "utils.py"),
        ("data", "data/topic_mc.jsonl"),
        ("data", "data/topic_gen.jsonl"),
    }
    assert not inputs.datasets and not inputs.remote
    assert input_hashes(inputs) == {f"{FOLDER}/{name}": _sha256(folder / name) for name in FILES}
    assert not list(folder.rglob("__pycache__")), "importing utils.py must not write into the DVC-tracked folder"


def test_standard_tasks_name_lm_eval_files_and_hub_datasets() -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = Path(lm_eval.__file__).parent / "tasks"
    manager = TaskManager(include_path=[str(tasks / "hellaswag"), str(tasks / "mmlu/default")], include_defaults=False)
    inputs = task_inputs(manager, ["hellaswag", "mmlu_abstract_algebra"])
    assert sorted(input_hashes(inputs)) == [
        "lm_eval/tasks/hellaswag/hellaswag.yaml",
        "lm_eval/tasks/hellaswag/utils.py",
        "lm_eval/tasks/mmlu/default/_default_template_yaml",
        "lm_eval/tasks/mmlu/default/mmlu_abstract_algebra.yaml",
    ]
    assert [(d.task, d.path, d.name, d.revision) for d in inputs.datasets] == [
        ("hellaswag", "Rowan/hellaswag", None, None),
        ("mmlu_abstract_algebra", "cais/mmlu", "abstract_algebra", None),
    ]


def test_dataset_record_of_a_hub_task_has_its_fingerprints() -> None:
    """What the score stage records for a hub dataset, on a loaded dataset made here (no hub in tests)."""
    import datasets

    split = datasets.Dataset.from_dict({"ctx": ["a", "b"], "label": [0, 1]})
    config = SimpleNamespace(dataset_path="Rowan/hellaswag", dataset_name=None, dataset_kwargs={"revision": "v1"})
    task = SimpleNamespace(config=config, dataset=datasets.DatasetDict({"validation": split}))
    assert dataset_record(task) == {
        "path": "Rowan/hellaswag",
        "name": None,
        "revision": "v1",
        "fingerprint": {"validation": split._fingerprint},
    }
    local = SimpleNamespace(config=SimpleNamespace(dataset_path="json", dataset_kwargs={}), dataset=None)
    assert dataset_record(local) is None, "local data is identified by its files' sha256, not by a fingerprint"


def _dvc(ws: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    # As a user with the venv activated: stage commands say `python`.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, capture_output=True, text=True, env=env)
    if ok:
        assert out.returncode == 0, f"dvc {' '.join(args)} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out


def test_a_registry_written_by_older_code_gets_the_task_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial entries without `task_dir` and a registry without the `adapters` and `generations` sections (the legacy
    record) make dvc.yaml unparsable; registering the campaign again (as `campaign run` does) writes them all: its
    fine-tuning trials train and merge (`adapters`) as they did."""
    ws = make_workspace(tmp_path / "ws")
    shutil.copytree(ROOT / "tests/fixtures/legacy", ws, dirs_exist_ok=True)
    monkeypatch.chdir(ws)
    failed = _dvc(ws, "status", ok=False)
    assert failed.returncode != 0 and "Could not find '" in failed.stderr + failed.stdout
    assert all(e["task_dir"] == "data/tasks" for e in read_registry(ws)["trials"].values())
    paths = CampaignPaths("legacy", ws)
    register_campaign(paths, load_params(paths.params))
    written = yaml.safe_load((ws / "campaigns/registry.yaml").read_text())
    assert [e["task_dir"] for e in written["trials"].values()] == ["data/tasks"] * 3
    assert written["generations"] == {}
    assert written["adapters"] == written["trials"]
    _dvc(ws, "status")  # parses again (its stages are stale: the record has no artefacts)


# --- end to end: one tiny campaign on the user's folder ------------------------------------------------------


def _params(ws: Path) -> Path:
    raw = yaml.safe_load((ROOT / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update({"name": "topics", "n_trials": 1, "n_init": 1, "baseline": False})
    raw["data"].update({"n_val": 10, "n_eval": 20})
    raw["model"]["tiny"]["pretrain_steps"] = 40
    raw["train"].update({"max_steps": 4, "eval_interval": 2})
    raw["eval"] = {"tasks": ["topic_mc", "topic_gen"], "metric": "exact_match", "batch_size": 32, "task_dir": FOLDER}
    path = ws / "topics.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(ws / ".prefect")}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=ws, env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("task_folder") / "ws")
    write_task_folder(ws)
    done = _cli(ws, "run", "--params", _params(ws).name)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ws


def _trace(ws: Path) -> tuple[subprocess.CompletedProcess, dict]:
    done = _cli(ws, "trace", "topics", "t000")
    return done, json.loads(done.stdout[: done.stdout.rindex("\n}") + 2])


@pytest.mark.slow
def test_campaign_on_a_user_task_folder_records_every_input(campaign: Path) -> None:
    ws = campaign
    metrics = json.loads((ws / "campaigns/topics/trials/t000/metrics.json").read_text())
    assert metrics["state"] == "complete" and set(metrics["tasks"]) == {"topic_mc", "topic_gen"}
    recorded = metrics["lm_eval"]["inputs"]
    assert recorded == {f"{FOLDER}/{name}": _sha256(ws / FOLDER / name) for name in FILES}
    assert metrics["lm_eval"]["versions"] == {"topic_gen": 2.0, "topic_mc": 1.0}
    assert metrics["lm_eval"]["datasets"] == {}
    entry = yaml.safe_load((ws / "campaigns/registry.yaml").read_text())["trials"]["topics-t000"]
    assert entry == {"campaign": "topics", "trial": "t000", "task_dir": FOLDER}
    deps = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["score@topics-t000"]["deps"]
    assert any(d["path"] == FOLDER and d["md5"].endswith(".dir") for d in deps)
    assert not list((ws / FOLDER).rglob("__pycache__"))
    assert "Data and pipelines are up to date." in _dvc(ws, "status").stdout

    done, record = _trace(ws)
    assert done.returncode == 0, done.stderr
    assert record["evaluation"]["inputs"] == recorded and record["evaluation"]["inputs_changed"] == []
    assert record["evaluation"]["task_dir"] == FOLDER and FOLDER in record["evaluation"]["dvc_deps"]
    assert "eval_inputs    ok" in done.stdout


@pytest.mark.slow
def test_a_changed_data_file_makes_the_score_stale(campaign: Path) -> None:
    ws = campaign
    data = ws / FOLDER / "data/topic_gen.jsonl"
    text = data.read_bytes()
    at = text.index(b"Topic")
    data.write_bytes(text[:at] + b"t" + text[at + 1 :])  # one byte

    status = _dvc(ws, "status", "--json").stdout
    assert json.loads(status) == {"score@topics-t000": [{"changed deps": {FOLDER: "modified"}}]}
    done, record = _trace(ws)
    assert done.returncode == 2 and "t000: eval_inputs modified" in done.stderr
    assert record["evaluation"]["inputs_changed"] == [f"{FOLDER}/data/topic_gen.jsonl"]

    # Reproducing re-scores only that trial, against the new data; the record says so.
    out = _dvc(ws, "repro").stdout
    assert "Running stage 'score@topics-t000'" in out and "Running stage 'train_lora" not in out
    metrics = json.loads((ws / "campaigns/topics/trials/t000/metrics.json").read_text())
    assert metrics["lm_eval"]["inputs"][f"{FOLDER}/data/topic_gen.jsonl"] == _sha256(data)
    assert "Data and pipelines are up to date." in _dvc(ws, "status").stdout
    assert _trace(ws)[0].returncode == 0
