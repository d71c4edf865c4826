"""Benchmark: wall time of a campaign with a per-trial breakdown, orchestration overhead, and a no-op `dvc repro`.

    python bench/campaign_time.py                      # clone this repo to a temp dir, run the default campaign
    python bench/campaign_time.py --workspace DIR      # analyse a campaign already run in DIR

Prints, per trial: the flow's wall time for the trial, each stage's wall time as DVC ran it (process start and
imports included), and the orchestration overhead = trial wall time -
sum of stage times. Then the import cost every stage process pays, and the time of a no-op `dvc repro`.
Targets (issue 2): default campaign < 15 min (aim 10); overhead per trial <= 1 s beyond imports.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout + out.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a workspace where the campaign already ran")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    total = None
    ws = args.workspace
    if ws is None:
        ws = Path(tempfile.mkdtemp(prefix="bench-campaign-")) / "ws"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
        total, _ = timed([sys.executable, "-m", "flows.cli", "run", "--params", args.params], ws)
    sys.path.insert(0, str(ws))
    from hpo.config import load_params
    from hpo.layout import CampaignPaths
    from hpo.search.study import open_study

    params = load_params(ws / args.params)
    paths = CampaignPaths(params.campaign.name, ws)
    study = open_study(paths, params)
    print(f"campaign {paths.name} in {ws}")
    if total is not None:
        print(f"total wall time (flow process, Prefect start-up included): {total:.1f} s = {total / 60:.2f} min")
    header = f"{'trial':>6} {'wall':>7} {'train':>7} {'score':>7} {'commit':>7} {'overhead':>9}"
    print(header)
    overheads, walls = [], []
    for t in study.trials:
        stages = t.user_attrs.get("stage_seconds") or {}
        wall = t.user_attrs.get("wall_seconds")
        if not wall or not {"train_lora", "score"} <= set(stages):
            continue
        overhead = wall - sum(stages.values())
        overheads.append(overhead)
        walls.append(wall)
        print(
            f"{t.user_attrs['trial_id']:>6} {wall:7.1f} {stages['train_lora']:7.1f} {stages['score']:7.1f} "
            f"{stages.get('dvc_commit', float('nan')):7.1f} {overhead:9.2f}"
        )
    if walls:
        print(
            f"mean trial wall {sum(walls) / len(walls):.1f} s; mean orchestration overhead per trial "
            f"{sum(overheads) / len(overheads):.2f} s (= {sum(overheads) / sum(walls):.1%} of trial time)"
        )
    imports = {
        "python + torch": "import torch",
        "litgpt (train, merge)": "import litgpt.finetune.lora",
        "litgpt + lm-eval (score)": "import litgpt.model, lm_eval.evaluator",
        "dvc": "import dvc.cli",
    }
    for name, code in imports.items():
        seconds, _ = timed([sys.executable, "-c", code], ws)
        print(f"import cost, {name}: {seconds:.2f} s")
    seconds, out = timed([sys.executable, "-m", "dvc", "repro"], ws)
    ran = out.count("Running stage")
    print(f"no-op dvc repro: {seconds:.2f} s ({ran} stages re-run)")


if __name__ == "__main__":
    main()
