"""Decisions as DVC keeps them: a recorded hyperparameter survives DVC's rewrites of dvc.lock unchanged."""

from __future__ import annotations

import random
from pathlib import Path

import yaml
from dvc.utils.serialize import modify_yaml

from hpo.record.layout import CampaignPaths
from hpo.record.records import lock_stable, read_trials, record_trial


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
