"""Benchmark: a warm worker's resident memory over a long campaign (does per-trial memory get released?).

    python bench/worker_memory.py [--trials 20]

Runs the small test campaign (tests/params.e2e.yaml: baseline + --trials Latin-hypercube points, one worker) in a
fresh clone and prints the worker's resident memory after each trial (lineage.yaml's `worker_rss_mb`, measured
after the trial released what it held) and how much the memory after the last trial differs from that after the
second. Goal (issue 9): within 5 %.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from hpo.layout import CampaignPaths
from hpo.record.records import read_lineage

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials after the baseline")
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="bench-memory-")) / "ws"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    raw = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update(name="memory", n_trials=args.trials, n_init=args.trials, workers=1)
    (ws / "memory.yaml").write_text(yaml.safe_dump(raw))
    subprocess.run([sys.executable, "-m", "flows.cli", "run", "--params", "memory.yaml"], cwd=ws, check=True)
    lineage = read_lineage(CampaignPaths("memory", ws))
    order = ["baseline", *sorted(t for t in lineage if t != "baseline")]
    rss = [float(lineage[t]["worker_rss_mb"]) for t in order]
    for n, (trial, mb) in enumerate(zip(order, rss, strict=True), 1):
        print(f"trial {n:>3} ({trial:>8}): worker RSS {mb:8.1f} MiB")
    print(f"base-model loads by the worker: {lineage[order[-1]]['worker_loads'].get('base_model')}")
    print(f"RSS after trial {len(rss)} vs after trial 2: {rss[-1]:.1f} / {rss[1]:.1f} MiB = {rss[-1] / rss[1]:.3f}")


if __name__ == "__main__":
    main()
