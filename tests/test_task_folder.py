"""A user's lm-eval task folder (`eval.task_dir`): validated with lm-eval's own loader, every file its tasks read
recorded (DVC dependency of the score stage, sha256 in metrics.json), and a changed data file makes the trial's
score stale in `dvc status` and `campaign trace`.

The folder is written the way lm-eval's docs write tasks (arc_easy.yaml's style): `dataset_path: json` with
`dataset_kwargs.data_files`, `doc_to_text` / `doc_to_choice` / `doc_to_target`, `metric_list`, `metadata.version`;
one multiple-choice task with `process_docs: !function utils.process_docs` from a utils.py beside it, one
generate_until task that `include:`s a shared YAML; the data files (JSONL of TinyTopic records) inside the folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from hpo.config import load_params
from hpo.layout import CampaignPaths
from hpo.record.records import read_registry, register_campaign
from hpo.tasks import dataset_record, input_hashes, task_inputs

from .helpers import (
    FILES,
    FOLDER,
    ROOT,
    Engines,
    campaign,
    declare,
    dvc,
    make_workspace,
    run_ok,
    sha256,
    write_task_folder,
)


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
    assert input_hashes(inputs) == {f"{FOLDER}/{name}": sha256(folder / name) for name in FILES}
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


def test_a_registry_written_by_older_code_gets_the_task_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial entries without `task_dir` and a registry without the `adapters` and `generations` sections (the legacy
    record) make dvc.yaml unparsable; registering the campaign again (as `campaign run` does) writes them all: its
    fine-tuning trials train and merge (`adapters`) as they did."""
    ws = make_workspace(tmp_path / "ws")
    shutil.copytree(ROOT / "tests/fixtures/legacy", ws, dirs_exist_ok=True)
    monkeypatch.chdir(ws)
    failed = dvc(ws, "status", ok=False)
    assert failed.returncode != 0 and "Could not find '" in failed.stderr + failed.stdout
    assert all(e["task_dir"] == "data/tasks" for e in read_registry(ws)["trials"].values())
    paths = CampaignPaths("legacy", ws)
    register_campaign(paths, load_params(paths.params))
    written = yaml.safe_load((ws / "campaigns/registry.yaml").read_text())
    assert [e["task_dir"] for e in written["trials"].values()] == ["data/tasks"] * 3
    assert written["generations"] == {}
    assert written["adapters"] == written["trials"]
    dvc(ws, "status")  # parses again (its stages are stale: the record has no artefacts)


# --- end to end: one tiny campaign on the user's folder ------------------------------------------------------


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, engines: Engines) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("task_folder") / "ws", base_model=tiny_base)
    write_task_folder(ws)
    params = declare(
        ws,
        "topics",
        campaign={"n_trials": 1, "n_init": 1, "baseline": False, "scheduler": engines.scheduler},
        data={"n_val": 10, "n_eval": 20},
        train={"max_steps": 4, "eval_interval": 2},
        eval={
            "replace": {
                "tasks": ["topic_mc", "topic_gen"],
                "metric": "exact_match",
                "batch_size": 32,
                "task_dir": FOLDER,
            }
        },
    )
    run_ok(ws, "run", "--params", params.name, extra_env=engines.env)
    return ws


def _trace(ws: Path) -> tuple[subprocess.CompletedProcess, dict]:
    done = campaign(ws, "trace", "topics", "t000")
    return done, json.loads(done.stdout[: done.stdout.rindex("\n}") + 2])


@pytest.mark.slow(weight=2)
def test_campaign_on_a_user_task_folder_records_every_input(topics: Path) -> None:
    ws = topics
    metrics = json.loads((ws / "campaigns/topics/trials/t000/metrics.json").read_text())
    assert metrics["state"] == "complete" and set(metrics["tasks"]) == {"topic_mc", "topic_gen"}
    recorded = metrics["lm_eval"]["inputs"]
    assert recorded == {f"{FOLDER}/{name}": sha256(ws / FOLDER / name) for name in FILES}
    assert metrics["lm_eval"]["versions"] == {"topic_gen": 2.0, "topic_mc": 1.0}
    assert metrics["lm_eval"]["datasets"] == {}
    untuned = json.loads((ws / "campaigns/topics/untuned/metrics.json").read_text())
    assert untuned["lm_eval"]["inputs"] == recorded, "the untuned reference is scored on the same files"
    own = ws / "campaigns/topics/trials/t000"  # the trial's own stages: its score depends on the task folder
    assert FOLDER in yaml.safe_load((own / "dvc.yaml").read_text())["stages"]["score"]["deps"]
    deps = yaml.safe_load((own / "dvc.lock").read_text())["stages"]["score"]["deps"]
    assert any(d["path"] == FOLDER and d["md5"].endswith(".dir") for d in deps)
    assert not list((ws / FOLDER).rglob("__pycache__"))
    assert "Data and pipelines are up to date." in dvc(ws, "status").stdout

    done, record = _trace(ws)
    assert done.returncode == 0, done.stderr
    assert record["evaluation"]["inputs"] == recorded and record["evaluation"]["inputs_changed"] == []
    assert record["evaluation"]["task_dir"] == FOLDER and FOLDER in record["evaluation"]["dvc_deps"]
    assert "eval_inputs    ok" in done.stdout


@pytest.mark.slow(weight=2)
def test_a_changed_data_file_makes_the_score_stale(topics: Path) -> None:
    ws = topics
    data = ws / FOLDER / "data/topic_gen.jsonl"
    text = data.read_bytes()
    at = text.index(b"Topic")
    data.write_bytes(text[:at] + b"t" + text[at + 1 :])  # one byte

    status = dvc(ws, "status", "--json").stdout
    score = "campaigns/topics/trials/t000/dvc.yaml:score"  # the trial's own stage
    # and the untuned reference, scored on the same folder
    changed = [{"changed deps": {FOLDER: "modified"}}]
    assert json.loads(status) == {score: changed, "untuned@topics": changed}
    done, record = _trace(ws)
    assert done.returncode == 2 and "t000: eval_inputs modified" in done.stderr
    assert record["evaluation"]["inputs_changed"] == [f"{FOLDER}/data/topic_gen.jsonl"]

    # Reproducing re-scores only that trial, against the new data; the record says so.
    out = dvc(ws, "repro").stdout
    assert f"Running stage '{score}'" in out and "Running stage 'campaigns/topics/trials/t000/dvc.yaml:train" not in out
    assert "Running stage 'untuned@topics'" in out
    metrics = json.loads((ws / "campaigns/topics/trials/t000/metrics.json").read_text())
    assert metrics["lm_eval"]["inputs"][f"{FOLDER}/data/topic_gen.jsonl"] == sha256(data)
    assert "Data and pipelines are up to date." in dvc(ws, "status").stdout
    assert _trace(ws)[0].returncode == 0
