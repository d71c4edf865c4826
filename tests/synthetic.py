"""Synthetic campaign records (no training): for tests and benchmarks of compare, trace and the reports."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import yaml

from hpo.files import write_yaml

ROOT = Path(__file__).resolve().parent.parent


def write_campaign(
    root: Path,
    name: str,
    n_trials: int,
    seed: int = 0,
    *,
    sampler: str = "tpe",
    n_failed: int = 0,
    data_hash: str = "d" * 32,
) -> None:
    """Writes a campaign's record as the flow and DVC would leave it, with scores from a smooth function."""
    rng = random.Random(seed)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["campaign"].update(name=name, seed=seed, sampler=sampler, n_trials=n_trials)
    base = root / "campaigns" / name
    write_yaml(base / "params.yaml", params)
    failures = {}
    lock = yaml.safe_load((root / "dvc.lock").read_text()) if (root / "dvc.lock").is_file() else None
    lock = lock or {"schema": "2.0", "stages": {}}
    lock["stages"][f"prepare_data@{name}"] = {"outs": [{"path": f"campaigns/{name}/data", "md5": data_hash + ".dir"}]}
    for i in range(n_trials):
        tid = f"t{i:03d}"
        values = {
            "learning_rate": math.exp(rng.uniform(math.log(1e-5), math.log(0.3))),
            "weight_decay": math.exp(rng.uniform(math.log(1e-4), 0.0)),
            "lora_r": rng.randint(1, 32),
            "lora_alpha": rng.randint(1, 64),
            "lora_dropout": rng.uniform(0, 0.5),
            "gradient_accumulation": rng.randint(1, 8),
        }
        out = base / "trials" / tid  # each trial's own decision and lineage, as `hpo.record.records` writes them
        write_yaml(out / "trial.yaml", {tid: {"params": values, "seeds": {"train": seed, "eval": seed}}})
        lineage = {"code": {"commit": "c" * 40, "dirty": False}, "data_hash": data_hash, "wall_seconds": 30.0}
        write_yaml(out / "lineage.yaml", lineage)
        tokens = 10000 * values["gradient_accumulation"]
        (out / "train.json").write_text(json.dumps({"state": "complete", "tokens": tokens}))
        if i < n_failed:
            failures[tid] = "RuntimeError: synthetic"
            continue
        score = 0.25 + 0.5 * math.exp(-((math.log10(values["learning_rate"]) + 2) ** 2))
        (out / "metrics.json").write_text(json.dumps({"state": "complete", "score": round(score, 6)}))
    write_yaml(base / "trials.yaml", {})
    write_yaml(base / "failures.yaml", failures)
    write_yaml(root / "dvc.lock", lock)
