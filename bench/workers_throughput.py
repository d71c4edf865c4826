"""Benchmark: trial throughput with 2 workers against 1 (`campaign.workers`), on this machine.

    python bench/workers_throughput.py [--trials 6]

Runs the same small campaign (tests/params.e2e.yaml without baseline, --trials trials) twice in fresh clones of
this repository, with workers: 1 and workers: 2, and prints trials per minute of the trial loop (from the first
trial's start to the last trial's end, so Prefect start-up, the workers' start and data/model preparation, the
same in both, are left out) and their ratio. Target (issue 4): >= 1.8x on a 2-core machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run(workers: int, trials: int) -> tuple[float, float]:
    ws = Path(tempfile.mkdtemp(prefix=f"bench-workers{workers}-")) / "ws"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    raw = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update(name="bench", n_trials=trials, baseline=False, workers=workers)
    (ws / "bench.yaml").write_text(yaml.safe_dump(raw))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--params", "bench.yaml"],
        cwd=ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first: tuple[float, str] | None = None  # when the first trial finished, and which
    last = None
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter()
        words = line.split()
        if len(words) > 1 and words[1] in ("complete", "failed"):
            first = first or (now, words[0])
            last = now
    if proc.wait() != 0 or first is None or last is None:
        raise RuntimeError(f"campaign with {workers} worker(s) failed in {ws}")
    # the loop starts when the first trial did: its finish minus its wall time (recorded in lineage.yaml)
    lineage = yaml.safe_load((ws / "campaigns/bench/lineage.yaml").read_text())
    started = first[0] - float(lineage[first[1]]["wall_seconds"])
    return (last - started) / 60, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    results = {}
    for workers in (1, 2):
        minutes, total = run(workers, args.trials)
        results[workers] = args.trials / minutes
        print(
            f"workers={workers}: {args.trials} trials, loop {minutes * 60:.1f} s, total {total:.1f} s, "
            f"{results[workers]:.2f} trials/min"
        )
    print(f"throughput ratio 2 workers / 1 worker: {results[2] / results[1]:.2f}x (target >= 1.8x)")


if __name__ == "__main__":
    main()
