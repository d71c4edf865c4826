"""Benchmark: trial throughput with 2 workers against 1 (`campaign.workers`), on this machine.

    python bench/workers_throughput.py [--trials 6] [--threads 1]

Runs the same small campaign (tests/params.e2e.yaml without baseline, --trials trials) twice in fresh clones of
this repository, with workers: 1 and workers: 2, and prints trials per minute of the trial loop (from the first
trial's start to the last trial's end, so Prefect start-up, the workers' start and data/model preparation, the
same in both, are left out) and their ratio. Target (issue 4): >= 1.8x on a 2-core machine.
Both runs do the same work: every trial is a Latin-hypercube design point (`n_init` = --trials: a proposer asked
while other trials still run would see fewer results with 2 workers and propose other points), no pruner or
budget, and every trial computes with the same torch threads (`campaign.cpu_threads` = --threads, default half the
cores: a reduction split over another number of threads sums in another order). With the default each trial uses
one core in both runs, so the 1-worker run leaves the other core idle: the ratio is what a second worker adds at
equal per-trial work. The two runs' scores must be identical trial by trial, else the bench exits with status 1
naming the trial and both scores before it prints the ratio (bench/agree.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from agree import check_agree  # bench/ is the script's folder, first on sys.path

from hpo.layout import CampaignPaths
from hpo.record.records import read_lineage

ROOT = Path(__file__).resolve().parent.parent


def run(workers: int, trials: int, threads: int) -> tuple[float, float, dict[str, float | None]]:
    """The campaign with `workers` workers: the trial loop's minutes, the whole run's seconds, each trial's score."""
    ws = Path(tempfile.mkdtemp(prefix=f"bench-workers{workers}-")) / "ws"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    raw = yaml.safe_load((ws / "tests/params.e2e.yaml").read_text())
    raw["campaign"].update(
        name="bench", n_trials=trials, n_init=trials, baseline=False, workers=workers, cpu_threads=threads
    )
    for key in ("pruner", "stop_after"):  # the same trials trained in full in both runs
        raw["campaign"].pop(key, None)
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
    # the loop starts when the first trial did: its finish minus its wall time (recorded in its lineage)
    lineage = read_lineage(CampaignPaths("bench", ws))
    started = first[0] - float(lineage[first[1]]["wall_seconds"])
    scores = {}
    for trial in lineage:
        metrics = ws / "campaigns/bench/trials" / trial / "metrics.json"
        scores[trial] = json.loads(metrics.read_text()).get("score") if metrics.is_file() else None
    return (last - started) / 60, time.perf_counter() - start, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument(
        "--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="torch threads per trial, both runs"
    )
    args = parser.parse_args()
    results, scores = {}, {}
    for workers in (1, 2):
        minutes, total, scores[f"workers={workers}"] = run(workers, args.trials, args.threads)
        results[workers] = args.trials / minutes
        print(
            f"workers={workers}: {args.trials} trials, {args.threads} thread(s) each, loop {minutes * 60:.1f} s, "
            f"total {total:.1f} s, {results[workers]:.2f} trials/min"
        )
    for trial in scores["workers=1"]:
        print(f"  {trial}: score {scores['workers=1'][trial]} / {scores['workers=2'].get(trial)}")
    check_agree(scores, "score", f"{args.trials} trials")
    print("scores identical with 1 and 2 workers: True")
    print(f"throughput ratio 2 workers / 1 worker: {results[2] / results[1]:.2f}x (target >= 1.8x)")


if __name__ == "__main__":
    main()
