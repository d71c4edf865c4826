"""Contracts with the internals of pinned libraries (docs/design.md#library-internals): where our code reaches past
a library's public API (litgpt's LoRA loop, DVC's commit, Optuna's storage; lm-eval's reaches are checked in
tests/test_contracts_lm_eval.py), a test here fails first when an upgrade moves what we rely on. Each test names the
module of ours that depends on the checked internal: `hpo/internals/<library>.py`, the one module per library that
touches its internals.

Fast on purpose (no `slow` marker): signatures, source shapes and tiny throwaway repositories/studies, plus two
2-step trainings of a randomly initialised tiny model (no pretraining: the contract is about litgpt's loop).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import inspect
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _params_of(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


def _calls(func: Callable[..., Any], name: str) -> list[ast.Call]:
    """The calls of the global `name` in `func`'s source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(func))))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


# litgpt ------------------------------------------------------------------------------------------------------------

SWAPPED = ("load_checkpoint", "merge_lora", "fit", "validate")


def test_litgpt_swapped_functions_keep_their_signatures() -> None:
    """hpo/internals/litgpt.py swaps these names of `litgpt.finetune.lora` and calls litgpt's own with these
    parameters: `load_checkpoint(fabric, model, checkpoint_path, strict=…)`, `validate(fabric, model,
    val_dataloader, eval, verbose=…)`; it reads `fit`'s `train` and `eval`, and replaces `merge_lora` with a
    function of keywords only."""
    import litgpt.finetune.lora as lora
    from lightning.fabric.strategies import FSDPStrategy, ModelParallelStrategy  # the loader's sharded cases

    assert FSDPStrategy and ModelParallelStrategy
    for name in SWAPPED:
        assert callable(getattr(lora, name, None)), f"litgpt.finetune.lora.{name} is gone"
    assert _params_of(lora.load_checkpoint)[:4] == ["fabric", "model", "checkpoint_path", "strict"]
    assert _params_of(lora.validate) == ["fabric", "model", "val_dataloader", "eval", "verbose"]
    assert {"train", "eval"} <= set(_params_of(lora.fit))
    assert {"checkpoint_dir", "pretrained_checkpoint_dir", "precision"} <= set(_params_of(lora.merge_lora))
    assert "epochs" in {f.name for f in dataclasses.fields(lora.TrainArgs)}


def test_litgpt_main_calls_the_swapped_functions_as_the_hooks_expect() -> None:
    """hpo/internals/litgpt.py: a swap only takes effect if litgpt's `main` and `fit` look the names up in the
    module's globals at call time, and only works if they call them the way the replacements accept: `merge_lora`
    with keywords only, `fit` with `train=` and `eval=` keywords, `load_checkpoint` with three positional
    arguments and `strict=`, and `validate` at an interval with `fit`'s own `eval` object (the first and final
    validations pass copies: that identity is how the hook tells an interval's validation). The loop must check
    `train.epochs` at each iteration (how a pruned trial's loop is ended)."""
    import litgpt.finetune.lora as lora

    main, fit = inspect.unwrap(lora.main), inspect.unwrap(lora.fit)
    assert {"load_checkpoint", "merge_lora", "fit", "validate"} <= set(main.__code__.co_names)
    assert "validate" in fit.__code__.co_names

    merges = _calls(main, "merge_lora")
    assert merges and all(not call.args for call in merges), "merge_lora is called with positional arguments"
    fits = _calls(main, "fit")
    assert fits and all({"train", "eval"} <= {k.arg for k in call.keywords} for call in fits)
    loads = _calls(main, "load_checkpoint")
    assert loads and all(len(c.args) <= 3 and {k.arg for k in c.keywords} <= {"strict"} for c in loads)
    validations = _calls(main, "validate") + _calls(fit, "validate")
    assert all(len(c.args) <= 4 and {k.arg for k in c.keywords} <= {"verbose"} for c in validations)
    interval = [c for c in _calls(fit, "validate") if len(c.args) == 4 and ast.unparse(c.args[3]) == "eval"]
    assert len(interval) == 1, "fit no longer validates at an interval with its own `eval`"
    assert "train.epochs" in inspect.getsource(fit)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """(params of tests/params.e2e.yaml, a randomly initialised tiny base checkpoint, its data folder), built with
    the base_model and prepare_data stages' own functions, without the base model's pretraining."""
    from hpo.config import load_params
    from hpo.textfile import read_text
    from stages.base_model import build_tiny
    from stages.prepare_data import prepare_data

    params = load_params(ROOT / "tests" / "params.e2e.yaml")
    root = tmp_path_factory.mktemp("tiny")
    prepare_data(params.data.model_copy(update={"path": ROOT / params.data.path}), root / "data")
    assert params.data.corpus is not None
    lines = [s for s in read_text(ROOT / params.data.corpus).splitlines() if s.strip()]
    (root / "base_model").mkdir()
    build_tiny(params.model.tiny, lines, root / "base_model", params.model.tiny.seed)
    return params, root / "base_model", root / "data"


def _train(tiny: tuple[Any, Path, Path], out_dir: Path, stop: Any, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """A 2-step training with validation after each step; returns (train.json, litgpt's logged rows, loss.csv)."""
    import stages.train_lora as stage
    from hpo.layout import TrialPaths

    params, base, data = tiny
    logged: list[dict[str, float | None]] = []
    read_litgpt_log = stage.read_litgpt_log

    def read_log(work: Path) -> list[dict[str, float | None]]:  # litgpt's CSV log, kept before it is deleted
        logged.extend(read_litgpt_log(work))
        return logged

    out = TrialPaths(out_dir)
    out.dir.mkdir(parents=True)
    train = params.trial_train({"max_steps": 2, "eval_interval": 1})
    with monkeypatch.context() as patch:
        patch.setattr(stage, "read_litgpt_log", read_log)
        result = stage.train_lora(train, base, data, out, 1, stop)
    with out.loss_curve.open() as f:
        curve = list(csv.DictReader(f))
    return result, logged, curve


def test_pruning_counts_steps_as_litgpts_loop_does(
    tiny: tuple[Any, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hpo/internals/litgpt.py (`stopping`) and hpo/search/training_pruning.py: over max_steps 2 with eval_interval 1,
    the stop is asked exactly once, at step 1 (not at the last step), with the validation loss litgpt logged at
    that step; a stop that answers at step 1 ends litgpt's loop there (one step trained, `steps: 1`)."""
    asked: list[tuple[int, float]] = []

    def never(step: int, val_loss: float) -> str | None:
        asked.append((step, val_loss))
        return None

    result, logged, curve = _train(tiny, tmp_path / "full", never, monkeypatch)
    assert [step for step, _ in asked] == [1]
    assert result["state"] == "complete" and result["steps"] == 2
    at_step_1 = [r["val_loss"] for r in logged if r["val_loss"] is not None and r["step"] == 1]
    assert at_step_1 == [pytest.approx(asked[0][1], rel=1e-6)]
    assert [r["val_loss"] for r in curve if r["iter"] == "1" and r["val_loss"]] == [f"{asked[0][1]:.6g}"]
    assert sorted({r["iter"] for r in curve if r["train_loss"]}) == ["1", "2"]

    stopped, _, short_curve = _train(tiny, tmp_path / "stopped", lambda step, _: "a contract test", monkeypatch)
    assert stopped["state"] == "pruned" and stopped["steps"] == 1
    assert stopped["reason"] == "pruned at step 1 of 2 by a contract test"
    assert [r["iter"] for r in short_curve if r["train_loss"]] == ["1"], "litgpt's loop went on after the stop"
    assert stopped["tokens"] < result["tokens"]


def test_litgpt_hooks_serialise_trainings_in_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """hpo/internals/litgpt.py: the swaps are process-wide, so two trainings in two threads of one process (a
    Dask worker with `--nthreads 2`) take turns under its lock: the second enters only after the first left, and
    inside, each thread's swapped `validate` is its own (it reaches that thread's `stop`)."""
    import litgpt.finetune.lora as lora

    from hpo.config import load_params
    from hpo.internals.litgpt import lora_hooks

    def litgpt_fit(*args: Any, **kwargs: Any) -> dict:  # stand-ins for litgpt's own, wrapped by the hooks
        return {}

    def litgpt_validate(fabric: Any, model: Any, val_dataloader: Any, eval: Any, verbose: bool = True) -> float:
        return 0.5

    monkeypatch.setattr(lora, "fit", litgpt_fit)
    monkeypatch.setattr(lora, "validate", litgpt_validate)
    originals = {name: getattr(lora, name) for name in SWAPPED}
    train = load_params(ROOT / "tests" / "params.e2e.yaml").trial_train({"max_steps": 4, "eval_interval": 1})

    def no_weights(checkpoint: Path) -> dict[str, Any]:  # the cached base weights (no checkpoint is loaded here)
        raise AssertionError(f"{checkpoint} loaded")

    events: list[tuple[str, str]] = []
    ready = threading.Barrier(2)

    def training(name: str) -> list[tuple[str, int]]:
        asked: list[tuple[str, int]] = []

        def stop(step: int, _loss: float) -> str | None:
            asked.append((name, step))
            return None

        ready.wait()
        schedule = {"eval_interval": train.eval_interval, "max_steps": train.max_steps}
        with lora_hooks(stop, {}, **schedule, base_state=no_weights):
            events.append(("enter", name))
            swapped = {n: getattr(lora, n) for n in SWAPPED}
            eval_args = object()
            lora.fit(train=SimpleNamespace(epochs=1), eval=eval_args)
            time.sleep(0.2)  # time enough for the other thread to swap, were it not waiting
            lora.validate(None, None, None, eval_args)
            assert {n: getattr(lora, n) for n in SWAPPED} == swapped
            events.append(("exit", name))
        return asked

    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(training, name) for name in ("a", "b")}
        asked = {name: future.result(timeout=30) for name, future in futures.items()}
    first, second = events[0][1], events[2][1]
    assert events == [("enter", first), ("exit", first), ("enter", second), ("exit", second)]
    assert asked == {"a": [("a", 1)], "b": [("b", 1)]}
    assert {name: getattr(lora, name) for name in SWAPPED} == originals


# DVC ---------------------------------------------------------------------------------------------------------------


def test_dvc_internals_of_commit_keep_their_signatures() -> None:
    """hpo/internals/dvc.py (`commit_stages`) runs the body of DVC's own `Repo.commit` (force=True) over several
    targets with `Repo(…, _wait_for_lock=True)`, `lock_repo(repo)`, `repo.stage.collect_granular(target)`
    (StageInfo: stage, filter_info), `stage.save()`, `stage.commit(filter_info=…, relink=…)` and
    `dvcfile.dump_stages(stages, update_pipeline=False)`; if DVC's own commit stops making these calls, ours no
    longer matches it."""
    from dvc.dvcfile import ProjectFile
    from dvc.lock import LockError
    from dvc.output import Output
    from dvc.repo import Repo, lock_repo
    from dvc.repo import commit as dvc_commit
    from dvc.repo.stage import StageInfo, StageLoad
    from dvc.stage import Stage

    assert issubclass(LockError, Exception)
    assert "_wait_for_lock" in _params_of(Repo.__init__)
    assert _params_of(lock_repo) == ["repo"]
    assert _params_of(StageLoad.collect_granular)[:2] == ["self", "target"]
    assert StageInfo._fields == ("stage", "filter_info")
    assert {"allow_missing"} <= set(_params_of(Stage.save))
    assert "filter_info" in _params_of(Stage.commit) and "kwargs" in _params_of(Stage.commit)
    assert {"filter_info", "relink"} <= set(_params_of(Output.commit))  # where Stage.commit passes `relink`
    assert _params_of(ProjectFile.dump_stages)[:3] == ["self", "stages", "update_pipeline"]
    theirs = inspect.getsource(dvc_commit.commit)
    for call in ("collect_granular(", "stage.save(", "filter_info=stage_info.filter_info", "relink=relink"):
        assert call in theirs, f"DVC's Repo.commit no longer calls {call}"
    assert "dump_stages(to_dump, update_pipeline=False)" in theirs


def test_dvc_commit_records_stages_run_outside_dvc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hpo/internals/dvc.py (`commit_stages`, through hpo/record/dvc.py's `commit`; `stage_status`, through
    `up_to_date`): on a throwaway git + DVC repository, two items of a `foreach` stage whose outputs we write
    ourselves are recorded as `dvc repro` would: dvc.lock holds both, their outputs are in the cache, and `dvc
    status` says the pipeline is up to date."""
    from dvc.repo import Repo

    from hpo.record.dvc import commit, up_to_date

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    Repo.init(str(tmp_path)).close()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("x\n")
    stage = {
        "foreach": ["a", "b"],
        "do": {"cmd": "python -c \"open('out-${item}.txt', 'w').write('${item}')\"", "deps": ["in.txt"]}
        | {"outs": ["out-${item}.txt"]},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make": stage}}))
    for item in ("a", "b"):
        (tmp_path / f"out-{item}.txt").write_text(item)  # the stage's command, run by us

    commit(["make@a", "make@b"], root=tmp_path)

    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]
    assert sorted(lock) == ["make@a", "make@b"]
    for item in ("a", "b"):
        (out,) = lock[f"make@{item}"]["outs"]
        assert out["path"] == f"out-{item}.txt"
        assert (tmp_path / ".dvc" / "cache" / "files" / "md5" / out["md5"][:2] / out["md5"][2:]).is_file()
    with Repo(str(tmp_path)) as repo:
        assert repo.status() == {}
    assert up_to_date("make@a", root=tmp_path)  # what a resumed trial skips
    (tmp_path / "out-a.txt").chmod(0o644)
    (tmp_path / "out-a.txt").write_text("changed")
    assert not up_to_date("make@a", root=tmp_path) and up_to_date("make@b", root=tmp_path)


# Optuna ------------------------------------------------------------------------------------------------------------


def test_optuna_internals_keep_their_signatures() -> None:
    """hpo/internals/optuna.py: `trial_by_number` (a worker's `AskPruner`) finds a running trial by number with
    `study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)` and builds
    `optuna.trial.Trial(study, trial_id)`; `live_trial` (a resumed campaign) builds `Trial(study,
    frozen._trial_id)`; `heartbeat_interval` and `record_heartbeat` (hpo/search/study.py's `heartbeat`,
    `fail_stale`) call `study._storage.get_heartbeat_interval()` and `record_heartbeat(trial._trial_id)` on storages
    that keep heartbeats."""
    import optuna
    from optuna.storages import BaseStorage, RDBStorage

    assert _params_of(BaseStorage.get_trial_id_from_study_id_trial_number) == ["self", "study_id", "trial_number"]
    assert _params_of(optuna.trial.Trial.__init__) == ["self", "study", "trial_id"]
    assert _params_of(RDBStorage.get_heartbeat_interval) == ["self"]
    assert _params_of(RDBStorage.record_heartbeat) == ["self", "trial_id"]
    assert callable(optuna.storages.fail_stale_trials)


def test_optuna_trial_built_from_storage_reports_and_prunes(tmp_path: Path) -> None:
    """hpo/internals/optuna.py (`trial_by_number`, `live_trial`, `heartbeat_interval`): on a JournalStorage study
    opened a second time (as a worker opens the campaign's study), the trial built from the storage's id of a trial
    number is that trial: what it reports is stored, and `should_prune` follows the pruner."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = str(tmp_path / "study.journal")
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)), pruner=pruner)
    for value in (1.0, 2.0):
        done = study.ask()
        done.report(value, 1)
        study.tell(done, value)
    running = [study.ask(), study.ask()]
    worker = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)), pruner=pruner)
    for asked, value, prune in zip(running, (0.5, 9.0), (False, True), strict=True):
        trial_id = worker._storage.get_trial_id_from_study_id_trial_number(worker._study_id, asked.number)
        assert trial_id == asked._trial_id == study.trials[asked.number]._trial_id
        trial = optuna.trial.Trial(worker, trial_id)
        assert trial.number == asked.number
        trial.report(value, 1)
        assert bool(trial.should_prune()) is prune
    fresh = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)))
    assert [t.intermediate_values for t in fresh.trials[2:]] == [{1: 0.5}, {1: 9.0}]
    assert getattr(worker._storage, "get_heartbeat_interval", lambda: None)() is None  # no heartbeats here


# lm-eval -----------------------------------------------------------------------------------------------------------
