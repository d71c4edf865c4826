"""Benchmark: the campaign's search strategy against random search, Optuna's default TPE and scikit-optimize's
`gp_minimize`, on continuous synthetic problems and discrete/mixed tabular HPO problems, outside the LLM pipeline.

    python bench/search_tables.py                       # once: the tabular problems' tables (~13 min on 2 cores)
    python bench/search_quality.py --results sq.jsonl   # 17 problems x 10 seeds, 25 and 50 trials (stop and resume
                                                        # with --results; skopt alone ~25 s a run)
    python bench/search_quality.py --kind discrete --strategies "ours gp/4" "random (Optuna)" "Optuna TPE default"
    python bench/search_quality.py --ask-time --problems hartmann6 svc_digits   # seconds a proposal at 100 trials

`bench/search_runs.jsonl` holds the runs behind bench/README.md's figures (10 seeds; ours gp/4, gp/10, tpe/4, tpe/10,
random, Optuna TPE, the cand TPE options; skopt not run: ~25 s a run): `--results bench/search_runs.jsonl
--strategies ...` with those names reprints them without running anything.

Continuous problems (8): Branin, six-hump camel, Hartmann-3 and -6, Rosenbrock-4, Levy-4, Styblinski-Tang-4, and
`krr_diabetes` (kernel ridge regression's alpha and gamma, log scales, 5-fold MSE on scikit-learn's diabetes data).
Discrete problems (9): tables made once by `bench/search_tables.py` (cached in `bench/search_tables/`, 40 kB) —
scikit-learn models (HistGradientBoosting x2, GradientBoosting, SVC, MLP, RandomForest, KNN, polynomial Ridge, SGD)
on its bundled data (digits, breast cancer, wine, diabetes, two `make_classification` sets) over grids of 4-5
integer, ordinal and categorical hyperparameters (324-864 points), each point trained in 3 repeats (split and model
seed); the space uses the project's dimension types (consecutive integers as `IntDimension` over the values,
ordered grids as `IntDimension` over the grid index, unordered ones as `CategoricalDimension`; see
search_tables.py). Evaluation i of a run with seed s returns one repeat, picked by a generator seeded (s, i).
Each strategy minimises each problem once per seed for 50 evaluations. Compared per budget (25, 50): the
noise-free value (mean over the repeats; a synthetic function's value) of the run's incumbent — the first point
with the lowest observed value, the one a campaign reports as its best — or, with `--observed`, the lowest
observed value itself, noise included (the same on continuous problems).
Ours is `hpo.search.strategy.Strategy` — exactly what a campaign asks: `n_init` Latin-hypercube points, then the
proposer re-seeded per trial — as `ours <sampler>/<n_init>`; `cand <sampler>/<n_init>` are proposers tried here
only (TPE options, a switch by space type; `variant_sampler`), run the same way. Optuna 5's default `TPESampler` is
already multivariate (`multivariate=None` means True for one objective) and `group` changes nothing on a space
without conditional parameters. Optuna's random search and TPE suggest the same dimensions (`suggest_int`,
`suggest_categorical`, `suggest_float`); skopt takes `Integer`/`Categorical`/`Real` (`hpo.config.space`).
Printed per budget: the mean (standard error) per problem and strategy, the average rank (1 = best mean) over all
problems and per kind, the default's (`--default`) win rate against each other strategy (the share of problems
where its mean is lower, and of (problem, seed) runs where its value is lower), over all problems and per kind;
then seconds per run, and last the default's wins against random search and Optuna's default TPE, per kind and
over all problems: `default <name>: vs random <a>/<n> (25) <b>/<n> (50); vs TPE <c>/<n> (25) <d>/<n> (50)`.
Goals (issue 19): the default beats random on >= 90 % of problems and Optuna's default TPE on >= 60 %, at 25 and 50
trials, over all problems and over each kind; a proposal <= 1 s at 100 trials on 2 cores.
The strategies differ by design (how well each searches is what is compared): each gets the same problems, seeds
and number of evaluations, and the figures are the best value at an equal budget, not a ratio of equal work.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from search_tables import REPEATS, TABLE_LIST, Table  # bench/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGETS = (25, 50)

# --- problems: (bounds per dimension, function to minimise, known minimum) ------------------------------------


def branin(x: np.ndarray) -> float:
    x1, x2 = x
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10)


def six_hump_camel(x: np.ndarray) -> float:
    x1, x2 = x
    return float((4 - 2.1 * x1**2 + x1**4 / 3) * x1**2 + x1 * x2 + (-4 + 4 * x2**2) * x2**2)


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann3(x: np.ndarray) -> float:
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H3_A * (x - _H3_P) ** 2, axis=1))))


def hartmann6(x: np.ndarray) -> float:
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def levy(x: np.ndarray) -> float:
    w = 1 + (x - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


def styblinski_tang(x: np.ndarray) -> float:
    return float(np.sum(x**4 - 16 * x**2 + 5 * x) / 2)


_DIABETES: tuple[np.ndarray, np.ndarray] | None = None


def krr_diabetes(x: np.ndarray) -> float:
    """A real HPO problem on data scikit-learn ships: the 5-fold mean squared error of RBF kernel ridge regression
    (alpha, gamma, both on a log scale) on the diabetes data (442 patients, standardised target). Its optimum is not
    known in closed form."""
    global _DIABETES
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import cross_val_score

    if _DIABETES is None:
        from sklearn.datasets import load_diabetes

        data, target = load_diabetes(return_X_y=True)
        _DIABETES = data, (target - target.mean()) / target.std()
    alpha, gamma = x
    model = KernelRidge(kernel="rbf", alpha=alpha, gamma=gamma)
    return float(-cross_val_score(model, *_DIABETES, cv=5, scoring="neg_mean_squared_error").mean())


# bounds per dimension: (low, high) or (low, high, "log") for a log-scaled one
Bounds = list[tuple[float, float] | tuple[float, float, str]]
CONTINUOUS: dict[str, tuple[Bounds, Callable[[np.ndarray], float], float]] = {
    "branin": ([(-5.0, 10.0), (0.0, 15.0)], branin, 0.397887),
    "six_hump_camel": ([(-3.0, 3.0), (-2.0, 2.0)], six_hump_camel, -1.0316),
    "hartmann3": ([(0.0, 1.0)] * 3, hartmann3, -3.86278),
    "hartmann6": ([(0.0, 1.0)] * 6, hartmann6, -3.32237),
    "rosenbrock4": ([(-2.048, 2.048)] * 4, rosenbrock, 0.0),
    "levy4": ([(-10.0, 10.0)] * 4, levy, 0.0),
    "styblinski_tang4": ([(-5.0, 5.0)] * 4, styblinski_tang, -39.16617 * 4),
    "krr_diabetes": ([(1e-5, 1e1, "log"), (1e-3, 1e2, "log")], krr_diabetes, math.nan),
}


@dataclass(frozen=True)
class Problem:
    """A problem to minimise: its kind, its space in the project's dimension types, how a point is evaluated —
    `evaluate(point, seed, index)`, the run's seed and the evaluation's index choosing a tabular problem's repeat —
    and a point's noise-free value (`truth`: the mean over a table's repeats; a synthetic function's value)."""

    kind: str  # "continuous" or "discrete"
    space: dict[str, Any]
    evaluate: Callable[[dict[str, Any], int, int], float]
    truth: Callable[[dict[str, Any]], float]


def continuous(bounds: Bounds, f: Callable[[np.ndarray], float]) -> Problem:
    from hpo.config.space import FloatDimension

    space = {
        f"x{i}": FloatDimension(type="float", low=b[0], high=b[1], log=len(b) == 3 and b[2] == "log")
        for i, b in enumerate(bounds)
    }

    def value(point: dict[str, Any]) -> float:
        return f(np.array([point[k] for k in space]))

    return Problem("continuous", space, lambda point, seed, index: value(point), value)


def tabular(table: Table) -> Problem:
    def evaluate(point: dict[str, Any], seed: int, index: int) -> float:
        repeat = int(np.random.default_rng([seed, index]).integers(REPEATS))
        return float(table.values()[table.cell(point), repeat])

    def truth(point: dict[str, Any]) -> float:
        return float(table.values()[table.cell(point)].mean())

    return Problem("discrete", table.space(), evaluate, truth)


PROBLEMS: dict[str, Problem] = {name: continuous(b, f) for name, (b, f, _) in CONTINUOUS.items()} | {
    t.name: tabular(t) for t in TABLE_LIST
}
KINDS = ("continuous", "discrete")


TRUTHS: list[float] = []  # the noise-free value of each evaluation of the run in progress (one run at a time)


def objective(problem: str, seed: int) -> Callable[[dict[str, Any]], float]:
    """The problem's objective for one run: evaluation i of the run is evaluate(point, seed, i); it also appends the
    point's noise-free value to TRUTHS (cleared here)."""
    counter = itertools.count()
    TRUTHS.clear()

    def f(point: dict[str, Any]) -> float:
        TRUTHS.append(PROBLEMS[problem].truth(point))
        return PROBLEMS[problem].evaluate(point, seed, next(counter))

    return f


def incumbents(values: list[float], truths: list[float]) -> list[float]:
    """Per budget, the noise-free value of the point with the lowest observed value among the first `budget` (the
    first such point: the one a campaign reports as its best)."""
    return [truths[int(np.argmin(values[:b]))] for b in BUDGETS]


# --- strategies: each returns the values of its evaluations in order ----------------------------------------


def ours(sampler: str, n_init: int) -> Callable[[str, int, int], list[float]]:
    """The campaign's strategy with a `campaign.sampler` the product knows."""

    def run(problem: str, seed: int, n: int) -> list[float]:
        from hpo.search.proposers import Search
        from hpo.search.strategy import Strategy

        search = Search(PROBLEMS[problem].space, sampler=sampler, n_init=n_init, seed=seed, direction="minimize")
        return [float(v) for v in Strategy(search).optimize(objective(problem, seed), n)]  # type: ignore[arg-type]

    return run


def variant_sampler(name: str, seed: int, startup: int, space: dict[str, Any]) -> Any:
    """Candidate proposers tried in the bench only (the product's `make_sampler` holds the chosen one)."""
    import optuna

    from hpo.config.space import FloatDimension

    tpe = optuna.samplers.TPESampler
    if name == "tpe-indep":
        return tpe(seed=seed, n_startup_trials=startup, multivariate=False)
    if name == "tpe-ends":
        return tpe(seed=seed, n_startup_trials=startup, consider_endpoints=True)
    if name == "tpe-ei64":
        return tpe(seed=seed, n_startup_trials=startup, n_ei_candidates=64)
    if name == "gp|tpe":  # gp on an all-float space, tpe otherwise
        if all(isinstance(d, FloatDimension) for d in space.values()):
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
        return tpe(seed=seed, n_startup_trials=startup)
    raise KeyError(name)


def variant(sampler: str, n_init: int) -> Callable[[str, int, int], list[float]]:
    """The campaign's strategy (design points, then the proposer re-seeded per trial as `make_sampler` seeds it)
    with a candidate proposer the product does not have."""

    def run(problem: str, seed: int, n: int) -> list[float]:
        from hpo.config import derive_seed
        from hpo.search.proposers import Search, distributions
        from hpo.search.strategy import Strategy

        space = PROBLEMS[problem].space
        search = Search(space, sampler="tpe", n_init=n_init, seed=seed, direction="minimize")

        class Variant(Strategy):
            def ask(self) -> Any:
                number = len(self.study.get_trials(deepcopy=False))
                startup = max(n_init, 1)
                self.study.sampler = variant_sampler(sampler, derive_seed(seed, "sampler", number), startup, space)
                return self.study.ask(distributions(search))

        return [float(v) for v in Variant(search).optimize(objective(problem, seed), n)]  # type: ignore[arg-type]

    return run


def suggest(trial: Any, name: str, dim: Any) -> Any:
    """The Optuna suggestion equivalent to a dimension."""
    from hpo.config.space import FloatDimension, IntDimension

    if isinstance(dim, FloatDimension):
        return trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    if isinstance(dim, IntDimension):
        return trial.suggest_int(name, dim.low, dim.high, log=dim.log)
    return trial.suggest_categorical(name, dim.choices)


def optuna_plain(kind: str) -> Callable[[str, int, int], list[float]]:
    def run(problem: str, seed: int, n: int) -> list[float]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, f = PROBLEMS[problem].space, objective(problem, seed)
        sampler = {
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        }[kind]()
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: f({name: suggest(t, name, dim) for name, dim in space.items()}), n)
        return [float(t.value) for t in study.trials]  # type: ignore[arg-type]

    return run


def skopt_gp(problem: str, seed: int, n: int) -> list[float]:
    from skopt import gp_minimize

    from hpo.config.space import skopt_dimension

    space, f = PROBLEMS[problem].space, objective(problem, seed)
    dims = [skopt_dimension(name, dim) for name, dim in space.items()]
    result = gp_minimize(lambda x: f(dict(zip(space, x, strict=True))), dims, n_calls=n, random_state=seed)
    return [float(v) for v in result.func_vals]


STRATEGIES: dict[str, Callable[[str, int, int], list[float]]] = {
    "ours tpe/4": ours("tpe", 4),
    "ours tpe/10": ours("tpe", 10),
    "ours gp/4": ours("gp", 4),
    "ours gp/10": ours("gp", 10),
    "random (Optuna)": optuna_plain("random"),
    "Optuna TPE default": optuna_plain("tpe"),
    "skopt gp_minimize": skopt_gp,
} | {
    f"cand {name}/{n_init}": variant(name, n_init)
    for name in ("tpe-indep", "tpe-ends", "tpe-ei64", "gp|tpe")
    for n_init in (4, 10)
}
RANDOM, TPE = "random (Optuna)", "Optuna TPE default"
DEFAULT = "ours gp/4"  # the schema's default campaign.sampler (gp) and n_init (4); params.yaml, which prunes, says tpe


def job(args: tuple[str, str, int]) -> tuple[str, str, int, list[float], list[float], float]:
    strategy, problem, seed = args
    began = time.perf_counter()
    values = STRATEGIES[strategy](problem, seed, max(BUDGETS))
    assert len(TRUTHS) == len(values), (strategy, problem, seed)
    return strategy, problem, seed, values, list(TRUTHS), time.perf_counter() - began


def ask_seconds(name: str, problem: str, n: int = 100, last: int = 10) -> tuple[float, float]:
    """The mean seconds of the last `last` of `n` proposals of an `ours <sampler>/<n_init>` strategy on a problem:
    wall-clock, and this process's CPU time (the wall time an idle machine would show with one thread)."""
    from hpo.search.proposers import Search
    from hpo.search.strategy import Strategy

    sampler, n_init = name.removeprefix("ours ").rsplit("/", 1)
    search = Search(PROBLEMS[problem].space, sampler=sampler, n_init=int(n_init), seed=0, direction="minimize")
    strategy, f, took, cpu = Strategy(search), objective(problem, 0), [], []
    for i in range(n):
        began, began_cpu = time.perf_counter(), time.process_time()
        trial = strategy.ask()
        if i >= n - last:
            took.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        strategy.tell(trial, f(dict(trial.params)))
    return float(np.mean(took)), float(np.mean(cpu))


def wins(
    best: dict[tuple[str, str, int], list[float]], a: str, b: str, problems: list[str], seeds: int, k: int
) -> tuple[int, float]:
    """On how many problems a's mean best (budget k) is lower than b's, and the share of runs where a's is lower."""
    mean = {(s, p): np.mean([best[s, p, seed][k] for seed in range(seeds)]) for s in (a, b) for p in problems}
    runs = [best[a, p, seed][k] < best[b, p, seed][k] for p in problems for seed in range(seeds)]
    return sum(bool(mean[a, p] < mean[b, p]) for p in problems), float(np.mean(runs))


def report(
    best: dict[tuple[str, str, int], list[float]], strategies: list[str], problems: list[str], seeds: int, default: str
) -> None:
    groups = {"all": problems} | {kind: [p for p in problems if PROBLEMS[p].kind == kind] for kind in KINDS}
    groups = {g: ps for g, ps in groups.items() if ps and (g == "all" or len(ps) < len(problems))}
    width = max(len(p) for p in problems)
    print(f"{len(problems)} problems x {seeds} seeds; minimising; mean best (standard error)")
    for k, budget in enumerate(BUDGETS):
        print(f"\n== {budget} trials ==")
        print(f"{'':<{width}}  " + "  ".join(f"{s:>20.20}" for s in strategies))
        for p in problems:
            cells = []
            for s in strategies:
                xs = [best[s, p, seed][k] for seed in range(seeds)]
                cells.append(
                    f"{np.mean(xs):>10.4g} ({np.std(xs, ddof=1) / math.sqrt(len(xs)) if len(xs) > 1 else 0:.2g})"
                )
            print(f"{p:<{width}}  " + "  ".join(f"{c:>20}" for c in cells))
        for group, ps in groups.items():
            ranks = {s: 0.0 for s in strategies}
            for p in ps:
                mean = {s: np.mean([best[s, p, seed][k] for seed in range(seeds)]) for s in strategies}
                for r, s in enumerate(sorted(strategies, key=lambda s: mean[s]), 1):
                    ranks[s] += r / len(ps)
            print(
                f"average rank ({group}): "
                + ", ".join(f"{s} {ranks[s]:.2f}" for s in sorted(ranks, key=lambda s: ranks[s]))
            )
        if default in strategies:
            for group, ps in groups.items():
                for s in strategies:
                    if s != default:
                        n, runs = wins(best, default, s, ps, seeds, k)
                        print(
                            f"{default} beats {s} ({group}): {n}/{len(ps)} problems ({n / len(ps):.0%}), "
                            f"{runs:.0%} of (problem, seed) runs"
                        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--kind", choices=("all", *KINDS), default="all", help="which problems (with no --problems)")
    parser.add_argument("--problems", nargs="*", default=None, choices=list(PROBLEMS))
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES)[:7], choices=list(STRATEGIES))
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--default", default=DEFAULT, choices=list(STRATEGIES), help="whose win rates are printed")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="a JSON-lines file: runs found there are not run again, new ones "
        "are appended as they finish (stop and resume a long run; print what is there with --seeds)",
    )
    parser.add_argument(
        "--ask-time",
        action="store_true",
        help="print the default's seconds per proposal at trials 91-100 on each problem (an ours strategy), and exit",
    )
    parser.add_argument(
        "--observed",
        action="store_true",
        help="compare the lowest observed values (a tabular problem's noise included) instead of the incumbents' "
        "noise-free values",
    )
    args = parser.parse_args()
    if args.ask_time:
        for p in args.problems or [p for p in PROBLEMS if args.kind in ("all", PROBLEMS[p].kind)]:
            wall, cpu = ask_seconds(args.default, p)
            print(f"{args.default} on {p}: {wall:.2f} s a proposal at trials 91-100 ({cpu:.2f} s CPU)", flush=True)
        return
    problems = args.problems or [p for p in PROBLEMS if args.kind in ("all", PROBLEMS[p].kind)]
    strategies = list(dict.fromkeys(args.strategies))
    # seed by seed, so that a run stopped early has every strategy and problem on its first seeds
    jobs = [(s, p, seed) for seed in range(args.seeds) for s in strategies for p in problems]
    wanted = set(jobs)
    # per run and budget: the lowest observed value, and the incumbent's noise-free value
    best: dict[tuple[str, str, int], list[float]] = {}
    incumbent: dict[tuple[str, str, int], list[float]] = {}
    seconds: dict[tuple[str, str], float] = {}
    if args.results and args.results.is_file():
        for line in args.results.read_text().splitlines():
            row = json.loads(line)
            key = row["strategy"], row["problem"], row["seed"]
            # rows written before incumbents were kept: a synthetic function's incumbent is its lowest value
            found = row.get("incumbent", row["best"] if PROBLEMS[key[1]].kind == "continuous" else None)
            if key in wanted and key not in best and found is not None:
                best[key], incumbent[key] = row["best"], found
                seconds[key[:2]] = seconds.get(key[:2], 0.0) + row["seconds"]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(job, j) for j in jobs if j not in best]
        for future in as_completed(futures):
            strategy, problem, seed, values, truths, took = future.result()
            key = strategy, problem, seed
            best[key], incumbent[key] = [min(values[:b]) for b in BUDGETS], incumbents(values, truths)
            seconds[strategy, problem] = seconds.get((strategy, problem), 0.0) + took
            if args.results:
                with args.results.open("a") as f:
                    row = {"strategy": strategy, "problem": problem, "seed": seed, "best": best[key]}
                    row |= {"incumbent": incumbent[key], "seconds": round(took, 2)}
                    f.write(json.dumps(row) + "\n")
    if not args.observed:
        best = incumbent
    report(best, strategies, problems, args.seeds, args.default)
    print()
    for kind in ("all", *KINDS):
        ps = [p for p in problems if kind in ("all", PROBLEMS[p].kind)]
        if ps and (kind == "all" or len(ps) < len(problems)):
            print(
                f"seconds per run ({kind}): "
                + ", ".join(
                    f"{s} {sum(seconds.get((s, p), 0.0) for p in ps) / (len(ps) * args.seeds):.1f}" for s in strategies
                )
            )
    if args.default in strategies and RANDOM in strategies and TPE in strategies:
        name = args.default.removeprefix("ours ").removeprefix("cand ")
        groups = [(kind, [p for p in problems if PROBLEMS[p].kind == kind]) for kind in KINDS]
        print()
        for group, ps in [*[(f" on {k}", ps) for k, ps in groups if ps and len(ps) < len(problems)], ("", problems)]:
            n = len(ps)
            (a, _), (b, _), (c, _), (d, _) = (
                wins(best, args.default, other, ps, args.seeds, k) for other in (RANDOM, TPE) for k in range(2)
            )
            print(f"default {name}{group}: vs random {a}/{n} (25) {b}/{n} (50); vs TPE {c}/{n} (25) {d}/{n} (50)")


if __name__ == "__main__":
    main()
