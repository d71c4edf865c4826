"""The trials table: one row per trial of a campaign, the one view that report, status, compare and the HTML
report all read.

Rows: the untuned reference first (`untuned`: the campaign's base model scored before any tuning, in campaigns
recorded since it exists), then every recorded trial (the `baseline` trial, t000, t001, …), then the warm-start
priors.

Columns: `trial`, `baseline` (a reference row — `untuned`, or the `baseline` trial at litgpt's default LoRA / the
generate section's settings — rather than a searched trial: never the best, not counted as searched), `state`
(complete, failed, pruned, interrupted, running, or prior for a warm-start observation), `score`, `params.<name>`
for each hyperparameter, `train_tokens`, `train_steps` (with a pruner: the optimizer steps it trained, fewer than
`train.max_steps` for a pruned trial), `lora_params` (when an objective: the adapter's weights) and `val_loss`
(fine-tuning trials), `gen_tokens` and `inference_cost` (generation trials: the prompt and response tokens the
trial's sampling spent, and its cost in the budget's units: tokens, or money with prices), `evaluated` (with
`eval.pruner`: the instances the trial's score or generate stage evaluated, fewer than all for a trial the pruner
stopped), `reason`, `warm_start_from`, and `train_tokens_total` and `inference_cost_total` (with a budget: the
campaign's running totals, in trial order), `feasible` (with `campaign.constraints`) and `pareto` (on the Pareto
front, with several `campaign.objectives`), and `wall_seconds` (the trial's wall time, all its stages, from
`lineage.yaml`: it varies between runs, so the report keeps it out of `trials.csv`, which a rebuild reproduces byte
for byte). A reference row leaves blank what it has not: hyperparameters, training, running totals.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpo.analysis.source import CampaignSource
from hpo.files import plain
from hpo.layout import BASELINE, STOPPED, UNTUNED

COLUMNS = [
    "trial",
    "baseline",
    "state",
    "score",
    "train_tokens",
    "train_steps",
    "lora_params",
    "val_loss",
    "gen_tokens",
    "inference_cost",
    "evaluated",
    "reason",
    "warm_start_from",
]
# The columns of the other kind's costs, left out of a campaign's table (a fine-tuning campaign's trials.csv keeps
# the columns it always had, so older records rebuild byte for byte).
OTHER_KIND_COLUMNS = {
    "finetune": ["gen_tokens", "inference_cost"],
    "generate": ["train_tokens", "train_steps", "lora_params", "val_loss"],
    "joint": [],  # a joint trial trains, then generates: both costs
}


RUNNING_TOTALS = ("train_tokens", "inference_cost")


def cost_column(table: pd.DataFrame) -> str:
    """The table's cost in tokens: training tokens (fine-tuning) or prompt + response tokens (generation)."""
    return "gen_tokens" if "gen_tokens" in table.columns else "train_tokens"


def trial_state(
    scored: dict[str, Any] | None, failure: str | None, lineage: dict[str, Any] | None
) -> tuple[str, str | None]:
    """A recorded trial's state and why: `failed` (failures.yaml), its metrics' state (complete, pruned), else
    `interrupted` when a signal stopped the run that ran it (lineage.yaml's `stopped`), else `running` (or left
    running by a run that was killed: the next run adopts it)."""
    if failure is not None:
        return "failed", failure
    if scored is not None:
        return scored["state"], scored.get("reason")
    stopped = (lineage or {}).get(STOPPED)
    return ("interrupted", f"{stopped} stopped the run") if stopped else ("running", None)


def trials_table(source: CampaignSource) -> pd.DataFrame:
    """One row per recorded trial (baseline included), then the warm-start priors, from the campaign's record."""
    trials = source.trials()
    failures = source.yaml(f"{source.dir}/failures.yaml", {})
    lineage = source.lineage()
    rows = []
    for trial, record in sorted(trials.items()):
        trained = source.json(f"{source.dir}/trials/{trial}/train.json")
        scored = source.json(f"{source.dir}/trials/{trial}/metrics.json")
        state, reason = trial_state(scored, failures.get(trial), lineage.get(trial))
        rows.append(
            {
                "trial": trial,
                "baseline": trial == BASELINE,
                "state": state,
                "score": scored.get("score") if scored else None,
                **{f"params.{k}": v for k, v in record["params"].items()},
                "train_tokens": trained.get("tokens") if trained else None,
                "train_steps": trained.get("steps") if trained else None,
                "lora_params": trained.get("lora_params") if trained else None,
                "val_loss": trained.get("val_loss") if trained else None,
                "gen_tokens": (scored.get("cost") or {}).get("total_tokens") if scored else None,
                "inference_cost": (scored.get("cost") or {}).get("inference_cost") if scored else None,
                "evaluated": (scored.get("evaluation") or {}).get("instances") if scored else None,
                "reason": reason,
                "warm_start_from": None,
                "wall_seconds": lineage.get(trial, {}).get("wall_seconds"),
            }
        )
    # Prior observations from a warm start: shown and marked, never candidates for this campaign's best.
    for prior in source.yaml(f"{source.dir}/warm_start.yaml", {}).get("observations", []):
        rows.append(
            {
                "trial": prior["source"],
                "baseline": False,
                "state": "prior",
                "score": prior["score"],
                **{f"params.{k}": v for k, v in prior["params"].items()},
                "train_tokens": None,
                "train_steps": None,
                "lora_params": None,
                "val_loss": None,
                "gen_tokens": None,
                "inference_cost": None,
                "evaluated": None,
                "reason": None,
                "warm_start_from": prior["source"],
                "wall_seconds": None,
            }
        )
    declared = source.yaml(f"{source.dir}/params.yaml", {})
    kind = (declared.get("campaign") or {}).get("kind") or "finetune"
    table = pd.DataFrame(rows, columns=None if rows else [*COLUMNS, "wall_seconds"])
    for column in [c for c in table.columns if c.startswith("params.")]:
        given = [row[column] for row in rows if row.get(column) is not None]
        if len(given) < len(rows) and given and all(isinstance(v, int) and not isinstance(v, bool) for v in given):
            table[column] = table[column].astype("Int64")  # an int setting unset in some trial (top_k: null)
    table = table.drop(columns=OTHER_KIND_COLUMNS[kind])
    # Columns a declaration asks for, so that a campaign recorded before they existed rebuilds the same table:
    campaign = declared.get("campaign") or {}
    asked = {
        "train_steps": bool(campaign.get("pruner")) or "train_steps" in (campaign.get("objectives") or []),
        "lora_params": "lora_params" in campaign.get("objectives", []),
        "evaluated": bool((declared.get("eval") or {}).get("pruner")),
    }
    table = table.drop(columns=[c for c, shown in asked.items() if not shown and c in table.columns])
    if "evaluated" in table.columns:
        table["evaluated"] = table["evaluated"].astype("Int64")  # a count, blank where nothing was evaluated
    if any((campaign.get("stop_after") or {}).values()) or campaign.get("optimization_budget"):
        ran = table["state"] != "prior"
        for cost in RUNNING_TOTALS:
            if cost in table.columns:  # the campaign's running total, in trial order (a rebuild gives the same)
                total = table[cost].where(ran).astype(float).fillna(0).cumsum().where(ran)
                table.insert(table.columns.get_loc(cost) + 1, f"{cost}_total", total)
    table = _objectives_columns(table, declared, lineage)
    reference = untuned_row(source, failures)
    return table if reference is None else _with_reference(table, reference)


def untuned_row(source: CampaignSource, failures: dict[str, Any]) -> dict[str, Any] | None:
    """The untuned reference's row (its `untuned/metrics.json`, or its failure in failures.yaml), or None for a
    campaign recorded before it existed (or whose reference has not run yet)."""
    scored = source.json(f"{source.dir}/{UNTUNED}/metrics.json")
    failure = failures.get(UNTUNED)
    if scored is None and failure is None:
        return None
    state, reason = trial_state(scored, failure, None)
    cost = (scored or {}).get("cost") or {}
    return {
        "trial": UNTUNED,
        "baseline": True,
        "state": state,
        "score": (scored or {}).get("score") if failure is None else None,
        "gen_tokens": cost.get("total_tokens"),
        "inference_cost": cost.get("inference_cost"),
        "evaluated": ((scored or {}).get("evaluation") or {}).get("instances"),
        "reason": reason,
        "pareto": False,  # with several objectives: a reference is on no front
    }


def _with_reference(table: pd.DataFrame, row: dict[str, Any]) -> pd.DataFrame:
    """The table with a reference row first: the columns it leaves blank (no hyperparameters, no training) keep
    their kind — a count stays a count (nullable), blank there."""
    table = table.copy()
    for column in table.columns:
        if row.get(column) is None and pd.api.types.is_integer_dtype(table[column].dtype):
            table[column] = table[column].astype("Int64")
    top = pd.DataFrame(
        {c: pd.Series([row.get(c)], dtype=table[c].dtype if len(table) else None) for c in table.columns}
    )
    return pd.concat([top, table], ignore_index=True) if len(table) else top


def _objectives_columns(table: pd.DataFrame, declared: dict, lineage: dict) -> pd.DataFrame:
    """`feasible` (the verdict recorded when the trial finished) in a campaign with constraints, and `pareto`
    (on the Pareto front of its objectives) in a multi-objective one."""
    campaign = declared.get("campaign") or {}
    if campaign.get("constraints"):
        verdicts = [(lineage.get(t) or {}).get("feasible") for t in table["trial"]]
        table.insert(table.columns.get_loc("reason"), "feasible", pd.array(verdicts, dtype="boolean"))
    chosen = campaign.get("objectives") or ["score"]
    if len(chosen) > 1:
        from hpo.search.objectives import pareto_front

        direction = (declared.get("eval") or {}).get("direction", "maximize")
        front = set(pareto_front(table, chosen, direction))
        table.insert(table.columns.get_loc("reason"), "pareto", table["trial"].isin(front))
    return table


def searched(table: pd.DataFrame) -> pd.DataFrame:
    """The trials the search proposed and the priors it was given: the table without the baseline."""
    return table[~table["baseline"].astype(bool)].reset_index(drop=True)


def param_names(table: pd.DataFrame) -> list[str]:
    """The hyperparameter names of the table's `params.<name>` columns."""
    return [c.removeprefix("params.") for c in table.columns if c.startswith("params.")]


def best_trial(table: pd.DataFrame, direction: str) -> dict[str, Any] | None:
    """The best complete searched trial (the baseline and priors are not candidates)."""
    done = table[(table["state"] == "complete") & ~table["baseline"].astype(bool) & table["score"].notna()]
    if "feasible" in done.columns:  # over a constraint: recorded, never the best
        done = done[done["feasible"].fillna(False).astype(bool)]
    if done.empty:
        return None
    row = done.loc[done["score"].idxmax() if direction == "maximize" else done["score"].idxmin()]
    return {
        "trial": row["trial"],
        "score": float(row["score"]),
        "params": {k.removeprefix("params."): plain(v) for k, v in row.items() if k.startswith("params.")},
    }
