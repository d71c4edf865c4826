"""Benchmark: parallel proposals — how much the campaign's search loses when `workers` trials run at once.

    python bench/search_parallel.py --results sp.jsonl --sequential sq.jsonl   # the default, workers 1, 2 and 4
    python bench/search_parallel.py --seeds 5 --results bench/search_parallel_runs.jsonl \
        --sequential bench/search_runs.jsonl                                  # reprints bench/README.md's figures
    python bench/search_parallel.py --seeds 3 --strategy "ours tpe/4" --workers 1 2 4 --kind discrete

Asynchronous evaluation is simulated on `bench/search_quality.py`'s problems, through the same
`hpo.search.strategy.Strategy`: `workers` points are asked before any is told; each evaluation gets a random
duration (log-normal, sigma 0.5, seeded by the run's seed), its value is told when it completes, in completion
order, and a new point is asked as soon as a worker is free — while the others still run, so the proposer sees them
as RUNNING trials (TPE's constant liar, GPSampler's running-trial handling). An evaluation's value is the
problem's value of its ask order (evaluation i of a seed picks the same repeat of a tabular problem whatever the
workers), and with one worker the loop is exactly `Strategy.optimize`: with `--sequential`, runs of
search_quality's `--results` file stand for one worker and for random search.
Compared: the noise-free value of the incumbent at 50 evaluations, as search_quality compares them.
Printed per problem: the mean of random search and of the strategy with each number of workers, and the loss of
`w` workers as a share of the gap between random search and one worker, (best_w - best_1) / (best_random - best_1)
("-" where random search is not worse); then that share pooled over all problems and per kind (the sums of both
differences, each problem in units of the standard deviation of its runs' values).
Goal (issue 19): <= 10 % with 2 and 4 workers.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from search_quality import DEFAULT, KINDS, PROBLEMS, RANDOM, STRATEGIES, TRUTHS, objective

N = 50


def strategy_of(name: str, problem: str, seed: int) -> Any:
    """The campaign's Strategy that a search_quality name `ours <sampler>/<n_init>` runs."""
    from hpo.search.proposers import Search
    from hpo.search.strategy import Strategy

    sampler, n_init = name.split(" ", 1)[1].rsplit("/", 1)
    search = Search(PROBLEMS[problem].space, sampler=sampler, n_init=int(n_init), seed=seed, direction="minimize")
    return Strategy(search)


def run(args: tuple[str, int, str, int]) -> tuple[str, int, str, int, float, float]:
    """One asynchronous run: the noise-free value of its incumbent (the first point with the lowest observed value,
    in ask order), and its seconds."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, workers, problem, seed = args
    began = time.perf_counter()
    if not name.startswith("ours "):  # random search: the sequential run
        found = STRATEGIES[name](problem, seed, N)
        return name, workers, problem, seed, TRUTHS[int(np.argmin(found))], time.perf_counter() - began
    strategy = strategy_of(name, problem, seed)
    f = objective(problem, seed)
    durations = np.random.default_rng([seed, 1009]).lognormal(0.0, 0.5, N)
    running: list[tuple[float, int, Any, float]] = []  # (finish time, ask order, trial, value)
    values: list[float] = []
    now = 0.0
    while len(values) < N or running:
        while len(running) < workers and len(values) < N:
            trial = strategy.ask()
            value = f(dict(trial.params))
            heapq.heappush(running, (now + durations[len(values)], len(values), trial, value))
            values.append(value)
        now, _, trial, value = heapq.heappop(running)
        strategy.tell(trial, value)
    return name, workers, problem, seed, TRUTHS[int(np.argmin(values))], time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--kind", choices=("all", *KINDS), default="all")
    parser.add_argument("--problems", nargs="*", default=None, choices=list(PROBLEMS))
    parser.add_argument("--strategy", default=DEFAULT, help="an `ours <sampler>/<n_init>` of search_quality")
    parser.add_argument("--workers", nargs="*", type=int, default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--results", type=Path, default=None, help="a JSON-lines cache of runs, as search_quality's")
    parser.add_argument("--sequential", type=Path, default=None, help="search_quality's --results: one worker, random")
    args = parser.parse_args()
    problems = args.problems or [p for p in PROBLEMS if args.kind in ("all", PROBLEMS[p].kind)]
    best: dict[tuple[str, int, str, int], float] = {}
    for path, sequential in ((args.sequential, True), (args.results, False)):
        if path and path.is_file():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if sequential:  # search_quality's rows: the incumbent after 25 and after 50 evaluations
                    found = row.get("incumbent", row["best"] if PROBLEMS[row["problem"]].kind == "continuous" else None)
                    if found is not None:
                        best[row["strategy"], 1, row["problem"], row["seed"]] = found[-1]
                else:
                    best[row["strategy"], row["workers"], row["problem"], row["seed"]] = row["best"]
    keys = [
        (s, w, p, seed)
        for seed in range(args.seeds)
        for p in problems
        for s, w in ((RANDOM, 1),) + tuple((args.strategy, w) for w in args.workers)
    ]
    todo = [k for k in keys if k not in best]
    with ProcessPoolExecutor(args.jobs) as pool:
        for future in as_completed([pool.submit(run, k) for k in todo]):
            name, workers, problem, seed, found, took = future.result()
            best[name, workers, problem, seed] = found
            if args.results:
                row = {
                    "strategy": name,
                    "workers": workers,
                    "problem": problem,
                    "seed": seed,
                    "best": found,
                    "seconds": round(took, 2),
                }
                with args.results.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    mean = {(s, w, p): float(np.mean([best[s, w, p, seed] for seed in range(args.seeds)])) for s, w, p, _ in keys}
    width = max(len(p) for p in problems)
    others = [w for w in args.workers if w != 1]
    print(f"{args.strategy}, {len(problems)} problems x {args.seeds} seeds, mean best at {N} evaluations")
    print(
        f"{'':<{width}}  {'random':>10}  "
        + "  ".join(f"{f'{w} worker(s)':>12}" for w in args.workers)
        + "  "
        + "  ".join(f"{f'loss {w}':>8}" for w in others)
    )
    # per problem, the loss of w workers over the random-to-one-worker gap; pooled over problems, each problem's
    # values in units of its runs' standard deviation (so no problem's units weigh more than another's)
    scale = {p: float(np.std([v for k, v in best.items() if k[2] == p])) or 1.0 for p in problems}
    for p in problems:
        one, rnd = mean[args.strategy, 1, p], mean[RANDOM, 1, p]
        shares = [(mean[args.strategy, w, p] - one) / (rnd - one) if rnd > one else math.nan for w in others]
        print(
            f"{p:<{width}}  {rnd:>10.4g}  "
            + "  ".join(f"{mean[args.strategy, w, p]:>12.4g}" for w in args.workers)
            + "  "
            + "  ".join(f"{x:>8.0%}" if x == x else f"{'-':>8}" for x in shares)
        )
    print("(-: random search's mean is not worse than one worker's on that problem)")
    for kind in ("all", *KINDS):
        ps = [p for p in problems if kind in ("all", PROBLEMS[p].kind)]
        if ps:
            gap = sum((mean[RANDOM, 1, p] - mean[args.strategy, 1, p]) / scale[p] for p in ps)
            losses = {
                w: sum((mean[args.strategy, w, p] - mean[args.strategy, 1, p]) / scale[p] for p in ps) for w in others
            }
            print(
                f"loss as a share of the random-to-one-worker gap, pooled ({kind}, {len(ps)} problems): "
                + "; ".join(f"{w} workers {losses[w] / gap:.0%}" for w in others)
            )


if __name__ == "__main__":
    main()
