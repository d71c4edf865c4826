"""Decisions as DVC keeps them: a recorded hyperparameter survives DVC's rewrites of dvc.lock unchanged."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from dvc.utils.serialize import modify_yaml

from hpo.layout import CampaignPaths
from hpo.record.records import lock_stable, read_trials, record_trial

from .helpers import ROOT


def _after_lock_rewrites(value: float, lock: Path, rewrites: int = 10) -> float:
    """`value` as a stage's parameter in dvc.lock after DVC rewrote the file `rewrites` times (ruamel's round
    trip, as DVC does each time it records another stage)."""
    lock.write_text(yaml.safe_dump({"stages": {"train": {"params": {"lr": value}}}}))
    for _ in range(rewrites):
        with modify_yaml(str(lock)) as data:
            data["stages"].setdefault("other", {"cmd": "true"})
    return float(yaml.safe_load(lock.read_text())["stages"]["train"]["params"]["lr"])


def test_recorded_floats_survive_dvc_lock_rewrites(tmp_path: Path) -> None:
    rng = random.Random(0)
    values = [10 ** rng.uniform(-7, -4.01) for _ in range(200)]  # learning rates below 1e-4: exponent form
    drifted = [v for v in values if _after_lock_rewrites(v, tmp_path / "raw.lock") != v]
    assert len(drifted) > 20, "ruamel's round trip drifts 17-digit exponent floats (what the recording guards)"

    paths = CampaignPaths("c", tmp_path)
    paths.dir.mkdir(parents=True)
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())  # the trial stages' templates
    for i, v in enumerate(drifted):
        record_trial(paths, f"t{i:03d}", {"learning_rate": v, "lora_r": 8}, {"train": 1}, 2)
    recorded = read_trials(paths)
    for i, v in enumerate(drifted):
        lr = recorded[f"t{i:03d}"]["params"]["learning_rate"]
        assert lr == lock_stable(v) and abs(lr - v) <= 1e-11 * v
        assert _after_lock_rewrites(lr, tmp_path / "stable.lock") == lr
    assert recorded["t000"]["params"]["lora_r"] == 8

    # a trial recorded before keeps its decision when it is recorded again (an interrupted trial run again)
    record_trial(paths, "t000", {"learning_rate": 0.5, "lora_r": 4}, {"train": 1}, 1)
    assert read_trials(paths)["t000"] == recorded["t000"]


def _dvc_repo(path: Path) -> Path:
    import subprocess
    import sys

    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, check=True)
    (path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: cp a.txt trials/b.txt\n    deps: [a.txt]\n    outs: [trials/b.txt]\n"
    )
    (path / "a.txt").write_text("a\n")
    (path / "trials").mkdir()
    (path / "trials/b.txt").write_text("a\n")
    return path


def test_commit_waits_for_a_busy_output_lock_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's `dvc repro` reading a folder that holds a trial's outputs (the report stage reads the
    campaign's trials folder) makes DVC refuse to write them at once ("is busy"): the commit of stages a worker ran
    waits and tries again, so the engine never re-runs computed stages for a lock."""
    import threading

    from dvc.repo import Repo
    from dvc.rwlock import rwlock

    from hpo.record.dvc import StageError, commit

    root = _dvc_repo(tmp_path / "repo")
    monkeypatch.chdir(root)  # the worker commits from the workspace
    repo = Repo(str(root))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # as `dvc repro report@…` of another campaign process does
        with rwlock(repo.tmp_dir, repo.fs, "dvc repro report", [str(root / "trials")], [], False):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    with pytest.raises(StageError, match="still busy after 1 attempts") as refused:
        commit(["s"], root, backoff=())
    assert refused.value.transient and not (root / "dvc.lock").exists()
    threading.Timer(1.0, release.set).start()
    commit(["s"], root, backoff=(0.5,) * 20)
    holder.join()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert [o["path"] for o in lock["stages"]["s"]["outs"]] == ["trials/b.txt"]
    assert lock["stages"]["s"]["outs"][0]["md5"] == "60b725f10c9c85c70d97880dfe8191b3"


def _source_campaign(root: Path, kind: str = "finetune") -> None:
    """A hand-built record of a campaign `src`: t000 complete (its report's best), t001 running, t002 failed, t003
    complete, t004 complete but its merged model not on disk (not merged yet, or a clean clone before `dvc repro`)."""
    from hpo.checkpoint import REQUIRED_FILES
    from hpo.files import write_yaml

    paths = CampaignPaths("src", root)
    write_yaml(paths.params, {"campaign": {"name": "src", "kind": kind}})
    write_yaml(paths.trials, {t: {"params": {}} for t in ("t000", "t001", "t002", "t003", "t004")})
    write_yaml(paths.failures, {"t002": "RuntimeError: boom"})
    for trial in ("t000", "t003", "t004"):
        paths.trial(trial).dir.mkdir(parents=True)
        paths.trial(trial).metrics.write_text('{"state": "complete", "score": 0.5}')
    for trial in ("t000", "t003"):
        paths.trial(trial).merged.mkdir(parents=True)
        for name in (*REQUIRED_FILES, "tokenizer.json"):
            (paths.trial(trial).merged / name).write_text("")
    paths.report.mkdir(parents=True)
    (paths.report / "best.json").write_text('{"best": {"trial": "t000", "score": 0.5}}')


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("src@best", "src/t000"),
        ("src/t000", "src/t000"),
        ("src/t001", "model.trial: src/t001 is not complete (state: running)"),
        ("src/t002", "model.trial: src/t002 is not complete"),
        ("src/t009", "model.trial: campaign 'src' has no trial 't009'"),
        ("src/t004", "src/t004"),  # its merged model is not on disk: merged on demand
        ("other@best", "model.trial: no campaign 'other'"),
        ("generation@best", "model.trial: 'generation@best' names this campaign"),
    ],
)
def test_a_model_trial_resolves_to_one_complete_trial(tmp_path: Path, reference: str, expected: str) -> None:
    from hpo.config import Params, ParamsError
    from hpo.record.records import resolve_model_trial

    _source_campaign(tmp_path)
    raw = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    raw["model"] = {"trial": reference}
    params = Params.model_validate(raw)
    if "/" in expected and " " not in expected:
        resolved = resolve_model_trial(params, tmp_path)
        assert resolved.model.trial == expected
        assert resolved.model.checkpoint_dir == Path(f"campaigns/{expected.replace('/', '/merged/')}")
        return
    with pytest.raises(ParamsError) as err:
        resolve_model_trial(params, tmp_path)
    assert str(err.value).startswith(expected), str(err.value)


def test_a_model_trial_is_merged_on_demand(tmp_path: Path) -> None:
    """A campaign starting from a trial registers that trial's merge_lora stage (upstream of its base_model stage
    in dvc.yaml), once, whether or not the merged model is on disk."""
    from hpo.record.records import read_registry, start_campaign

    _source_campaign(tmp_path)
    raw = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    raw["model"] = {"trial": "src/t004"}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    for _ in range(2):
        start_campaign(tmp_path / "p.yaml", tmp_path)
    assert read_registry(tmp_path)["merges"] == {
        "src-t004": {"campaign": "src", "trial": "t004", "reason": "model.trial of generation"}
    }


def test_a_recorded_campaign_resumes_on_the_trial_best_named_then(tmp_path: Path) -> None:
    from hpo.config import Params
    from hpo.files import write_yaml
    from hpo.record.records import resolve_model_trial

    _source_campaign(tmp_path)
    raw = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    write_yaml(CampaignPaths("generation", tmp_path).params, {**raw, "model": {"trial": "src/t003"}})
    raw["model"] = {"trial": "src@best"}  # src's report now names t000
    assert resolve_model_trial(Params.model_validate(raw), tmp_path).model.trial == "src/t003"


def test_a_generation_campaigns_trial_is_no_model(tmp_path: Path) -> None:
    from hpo.config import Params, ParamsError
    from hpo.record.records import resolve_model_trial

    _source_campaign(tmp_path, kind="generate")
    raw = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    raw["model"] = {"trial": "src@best"}
    with pytest.raises(ParamsError, match="is a generate campaign, whose trials train no model"):
        resolve_model_trial(Params.model_validate(raw), tmp_path)


def _campaign_with_templates(root: Path, kind: str = "finetune") -> CampaignPaths:
    from hpo.files import write_yaml

    paths = CampaignPaths("c", root)
    write_yaml(paths.params, {"campaign": {"name": "c", "kind": kind}})
    write_yaml(paths.trials, {})
    (root / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())  # the trial stages' templates
    return paths


def test_recording_a_trial_writes_only_its_own_files(tmp_path: Path) -> None:
    """Bookkeeping per trial does not grow with the campaign: recording trial 4 — its decision and stages, the
    pruner's decision, its lineage twice — writes only files in its own folder; a failure adds failures.yaml and
    withdraws its stages."""
    from hpo.record.records import read_lineage, read_trial, record_failure, record_lineage, record_pruning

    paths = _campaign_with_templates(tmp_path)
    for i in range(3):
        record_trial(paths, f"t{i:03d}", {"learning_rate": 0.01 * (i + 1)}, {"train": i, "eval": i}, 2)
        record_lineage(paths, f"t{i:03d}", {"code": {"commit": "c" * 40}, "wall_seconds": float(i)})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    record_trial(paths, "t003", {"learning_rate": 0.5}, {"train": 3, "eval": 7}, 2)
    record_lineage(paths, "t003", {"code": {"commit": "d" * 40}})
    record_pruning(paths, "t003", {"step": 2, "by": "median"})
    record_lineage(paths, "t003", {"wall_seconds": 4.0})
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")}
    changed = sorted(str(p.relative_to(tmp_path)) for p, b in after.items() if before.get(p) != b)
    assert changed == [f"campaigns/c/trials/t003/{n}" for n in ("dvc.yaml", "lineage.yaml", "trial.yaml")]

    assert read_trial(paths, "t003") == {
        "params": {"learning_rate": 0.5},
        "seeds": {"train": 3, "eval": 7},
        "threads": 2,
        "pruned": {"step": 2, "by": "median"},
    }
    assert read_lineage(paths)["t003"] == {"code": {"commit": "d" * 40}, "wall_seconds": 4.0}
    assert list(read_trials(paths)) == ["t000", "t001", "t002", "t003"]
    stages = yaml.safe_load(paths.trial("t003").pipeline.read_text())["stages"]
    assert sorted(stages) == ["score", "train_lora"]
    assert stages["train_lora"]["wdir"] == "../../../.."  # run from the workspace, as the root stages are
    assert stages["train_lora"]["cmd"] == "python -m stages.train_lora --campaign c --trial t003"
    assert stages["train_lora"]["params"][0] == {"campaigns/c/trials/t003/trial.yaml": ["t003"]}
    assert stages["score"]["params"][0] == {"campaigns/c/trials/t003/trial.yaml": ["t003"]}
    assert "campaigns/c/trials/t003/adapter" in stages["score"]["deps"]

    record_failure(paths, "t003", "RuntimeError: boom")
    assert not paths.trial("t003").pipeline.exists() and read_trial(paths, "t003")["seeds"]["eval"] == 7


def test_a_trial_recorded_before_per_trial_records_moves_to_its_own_files(tmp_path: Path) -> None:
    """A campaign recorded before per-trial records (trials.yaml, lineage.yaml, the registry's trial sections) is
    read as it is; a trial of it recorded again (an interrupted one, run again) gets its own decision, stages and
    lineage, and leaves the registry's `foreach`, so DVC does not see its stages twice."""
    from hpo.files import read_yaml, write_yaml
    from hpo.record.records import read_lineage, read_registry, record_lineage

    paths = _campaign_with_templates(tmp_path)
    write_yaml(paths.trials, {t: {"params": {"lora_r": 4}, "seeds": {"train": 1, "eval": 1}} for t in ("t000", "t001")})
    write_yaml(paths.lineage, {"t000": {"wall_seconds": 3.0}, "t001": {"interrupted": 1}})
    entries = {f"c-{t}": {"campaign": "c", "trial": t, "task_dir": "data/tasks"} for t in ("t000", "t001")}
    write_yaml(tmp_path / "campaigns/registry.yaml", {"campaigns": {}, "adapters": entries, "trials": dict(entries)})
    assert read_registry(tmp_path)["trials"]["c-t000"]["decisions"] == "campaigns/c/trials.yaml"
    assert read_lineage(paths) == {"t000": {"wall_seconds": 3.0}, "t001": {"interrupted": 1}}

    record_trial(paths, "t001", {"lora_r": 8}, {"train": 1, "eval": 1}, 2)
    record_lineage(paths, "t001", {"wall_seconds": 5.0})
    assert read_trials(paths)["t001"]["params"] == {"lora_r": 4}, "it keeps its decision"
    assert read_lineage(paths)["t001"] == {"interrupted": 1, "wall_seconds": 5.0}
    registry = read_yaml(tmp_path / "campaigns/registry.yaml", {})
    assert list(registry["adapters"]) == list(registry["trials"]) == ["c-t000"]
    assert paths.trial("t001").pipeline.is_file() and not paths.trial("t000").pipeline.exists()


def test_a_failing_untuned_reference_is_recorded_and_the_campaign_goes_on(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The untuned reference's stage raising in a worker is a StageError naming the stage (its traceback in
    `logs/untuned.log`); the campaign records it in failures.yaml (`untuned: <error line>`), the trials table
    shows it failed, and once a later run records the reference the failure is forgotten."""
    import sys

    from hpo.analysis.source import CampaignSource
    from hpo.analysis.table import trials_table
    from hpo.campaign import Campaign
    from hpo.files import read_yaml
    from hpo.record.dvc import StageError
    from hpo.trials.worker import run_campaign_stage

    monkeypatch.setattr(sys, "path", list(sys.path))  # (the worker puts the workspace first)
    c = Campaign.start(workspace / "params.yaml", workspace)
    assert c.paths.untuned.dir.is_dir(), "the report stage's dependency exists before the reference runs"

    def boom(paths: CampaignPaths, *, params: object = None) -> dict:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(
        StageError, match=rf"untuned@{c.name} failed in worker .*\nRuntimeError: CUDA out of memory"
    ) as err:
        run_campaign_stage(str(workspace), c.name, "untuned", boom)
    assert "Traceback" in (c.paths.dir / "logs/untuned.log").read_text()
    shown = c.untuned(err.value)
    assert shown == {"state": "failed", "reason": "RuntimeError: CUDA out of memory", "score": None}
    assert read_yaml(c.paths.failures, {}) == {"untuned": "RuntimeError: CUDA out of memory"}
    row = trials_table(CampaignSource(c.name, root=workspace)).iloc[0]
    assert (row["trial"], row["state"], row["reason"]) == ("untuned", "failed", "RuntimeError: CUDA out of memory")

    assert c.untuned({"state": "complete", "score": 0.5, "ran": True}) == {
        "state": "complete",
        "score": 0.5,
        "ran": True,
    }
    assert read_yaml(c.paths.failures, {}) == {}
