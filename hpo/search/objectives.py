"""What a campaign optimises beyond its score, and what a trial must respect: objectives and constraints.

A multi-objective campaign (`campaign.objectives: [score, train_tokens]`) tells the study the score (in
`eval.direction`) and each cost (minimised) of a trial; Optuna's multi-objective samplers (TPE, GP, random, QMC)
then propose, and the report shows the Pareto front — the complete, feasible trials that no other trial beats
on every objective. Constraints (`campaign.constraints: {wall_seconds: 60}`) cap a trial's costs: each trial's
violations (`value - limit`, feasible when all are <= 0) are recorded with it and set on its Optuna trial
(`Trial.set_constraint`, which TPE and GP read); an infeasible trial stays in the record, shown as such, and is
never the best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import pandas as pd

from hpo.config.vocabulary import GENERATION, TRAINING

# objective or constraint name -> (the record it is read from, its key there); all but the score are minimised
COSTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train_tokens": ("train", ("tokens",)),
    "train_steps": ("train", ("steps",)),
    "lora_params": ("train", ("lora_params",)),
    "gen_tokens": ("metrics", ("cost", "total_tokens")),
    "inference_cost": ("metrics", ("cost", "inference_cost")),
    "wall_seconds": ("lineage", ("wall_seconds",)),
    "worker_rss_mb": ("lineage", ("worker_rss_mb",)),
}
OBJECTIVES = ("score", *TRAINING, *GENERATION)  # reproducible: recomputed by a rebuild, so the front is too
CONSTRAINTS = ("wall_seconds", "worker_rss_mb", "train_tokens", "gen_tokens", "inference_cost")


def trial_costs(trained: dict | None, scored: dict | None, lineage: dict | None) -> dict[str, float | None]:
    """Every cost a trial's records hold (None where a record or key is missing)."""
    records = {"train": trained or {}, "metrics": scored or {}, "lineage": lineage or {}}
    costs: dict[str, float | None] = {}
    for name, (record, keys) in COSTS.items():
        value: Any = records[record]
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        costs[name] = float(value) if isinstance(value, int | float) else None
    return costs


Direction = Literal["minimize", "maximize"]
Name = TypeVar("Name", bound=str)


def directions(objectives: Sequence[str], score_direction: str) -> list[Direction]:
    """The study's directions: the score's, then minimise each cost."""
    score: Direction = "maximize" if score_direction == "maximize" else "minimize"
    return [score if name == "score" else "minimize" for name in objectives]


def values(objectives: Sequence[str], score: float, costs: dict[str, float | None]) -> list[float]:
    """What the study is told for a complete trial, in the order of `objectives`."""
    return [float(score) if name == "score" else float(costs[name] or 0.0) for name in objectives]


def violations(constraints: Mapping[Name, float], costs: dict[str, float | None]) -> dict[Name, float]:
    """`value - limit` per constraint (<= 0: satisfied; a missing value counts as 0), as Optuna's
    `Trial.set_constraint` takes them."""
    return {name: round(float(costs.get(name) or 0.0) - limit, 6) for name, limit in constraints.items()}


def pareto_front(table: pd.DataFrame, objectives: Sequence[str], score_direction: str) -> list[str]:
    """The trials (ids, in table order) on the Pareto front of `objectives`: complete, feasible, searched (no
    baseline, no prior), and beaten on every objective by no other such trial."""
    done = table[(table["state"] == "complete") & ~table["baseline"].astype(bool) & table["score"].notna()]
    if "feasible" in done.columns:
        done = done[done["feasible"].fillna(False).astype(bool)]
    signs = [(-1.0 if d == "maximize" else 1.0) for d in directions(objectives, score_direction)]
    points = [
        [s * float(row[o] if pd.notna(row[o]) else 0.0) for s, o in zip(signs, objectives, strict=True)]
        for _, row in done.iterrows()
    ]
    front = []
    for i, p in enumerate(points):
        dominated = any(
            all(q[k] <= p[k] for k in range(len(p))) and any(q[k] < p[k] for k in range(len(p)))
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(str(done.iloc[i]["trial"]))
    return front
