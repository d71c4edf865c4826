"""report: aggregate a campaign's trials into a table, the best trial and an optimisation-history plot, with the two
references beside them: the untuned base model (the `untuned` stage) and the baseline trial.

Reads only what DVC tracks (the decision records and each trial's metrics), so `dvc repro` rebuilds the same
report. Everything it writes is deterministic for a seed on CPU (costs are counted in tokens); wall times, which
vary from run to run, stay in `lineage.yaml` and are shown by `campaign status` and the HTML report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hpo.analysis.source import CampaignSource
from hpo.analysis.table import best_trial, trials_table
from hpo.config import Params, load_params
from hpo.files import plain
from hpo.layout import BASELINE, UNTUNED, CampaignPaths, stage_args
from hpo.search.objectives import directions


def report(paths: CampaignPaths) -> dict[str, Any]:
    """Writes `report/trials.csv`, `best.json` and `history.png`; returns the best-trial record."""
    params = load_params(paths.params)
    table = trials_table(CampaignSource(paths.name, root=paths.root))
    paths.report.mkdir(parents=True, exist_ok=True)
    table.drop(columns=["wall_seconds"]).to_csv(paths.report / "trials.csv", index=False)
    reference, table = table[table["trial"] == UNTUNED], table[table["trial"] != UNTUNED]  # the trials' spend alone
    best = best_trial(table, params.eval.direction)
    base = table[table["trial"] == BASELINE]
    summary: dict[str, Any] = {
        "campaign": paths.name,
        "metric": objective(params),
        "direction": params.eval.direction,
        "n_init": params.campaign.n_init,
        "best": best,
        "baseline_score": plain(base["score"].iloc[0]) if len(base) else None,
        **untuned_summary(reference),
        "completed": int(((table["state"] == "complete") & ~table["baseline"]).sum()),
        "failed": int(((table["state"] == "failed") & ~table["baseline"]).sum()),
        "warm_start_priors": int((table["state"] == "prior").sum()),
        "artefacts": artefacts(paths, params, best["trial"]) if best else None,
        **(pareto(table, params) if params.campaign.multi_objective else {}),
        **(training_spend(table) if params.campaign.trains and _counts_training(params) else {}),
        **(generation_spend(table, params) if params.campaign.generates else {}),
    }
    (paths.report / "best.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_history(table, summary, params.eval.direction, paths.report / "history.png")
    return summary


def untuned_summary(reference: pd.DataFrame) -> dict[str, Any]:
    """The untuned reference's score (`untuned_score`; None when its evaluation failed, `untuned_failed` saying
    why); nothing for a campaign recorded before it existed (its best.json rebuilds the same)."""
    if reference.empty:
        return {}
    row = reference.iloc[0]
    summary = {"untuned_score": None if pd.isna(row["score"]) else plain(row["score"])}
    if row["state"] == "failed":
        summary["untuned_failed"] = row["reason"]
    return summary


def pareto(table: pd.DataFrame, params: Params) -> dict[str, Any]:
    """A multi-objective campaign's objectives and its Pareto front: each trial on it with its values."""
    names = params.campaign.objectives
    front = table[table["pareto"]]
    return {
        "objectives": {name: d for name, d in zip(names, directions(names, params.eval.direction), strict=True)},
        "pareto_front": [{"trial": row["trial"], **{n: plain(row[n]) for n in names}} for _, row in front.iterrows()],
    }


def _counts_training(params: Params) -> bool:
    """Whether the campaign prunes or budgets its training (older records' best.json then rebuild the same)."""
    return params.campaign.pruner is not None or any(
        v is not None for v in params.campaign.stop_after.model_dump().values()
    )


def training_spend(table: pd.DataFrame) -> dict[str, Any]:
    """A training campaign's spend: pruned trials, the tokens all trials trained and (with a pruner) their steps."""
    spend = {
        "pruned": int(((table["state"] == "pruned") & ~table["baseline"]).sum()),
        "train_tokens": int(table["train_tokens"].fillna(0).sum()),
    }
    if "train_steps" in table.columns:
        spend["train_steps"] = int(table["train_steps"].fillna(0).sum())
    return spend


def generation_spend(table: pd.DataFrame, params: Params) -> dict[str, Any]:
    """A generation campaign's spend: pruned trials, tokens sampled, and the inference cost against B.o."""
    return {
        "pruned": int(((table["state"] == "pruned") & ~table["baseline"]).sum()),
        "gen_tokens": int(table["gen_tokens"].fillna(0).sum()),
        "inference_cost": plain(table["inference_cost"].fillna(0).sum()),
        "optimization_budget": params.campaign.optimization_budget,
        "inference_budget": params.generate.inference_budget,
    }


def objective(params: Params) -> str:
    """What the score is, in words."""
    tasks = ", ".join(params.eval.tasks)
    if params.campaign.generates:
        n = params.generate.n if "n" not in params.space else "n"
        return f"mean {params.generate.utility} of {params.eval.metric} over {n} responses per instance, {tasks}"
    return f"mean {params.eval.metric} over {tasks}"


def artefacts(paths: CampaignPaths, params: Params, trial: str) -> dict[str, str]:
    """Where a trial's outputs are: adapter and merged model (fine-tuning), responses (generation), metrics."""
    out = paths.trial(trial)
    found = {"adapter": str(out.adapter), "merged": str(out.merged)} if params.campaign.trains else {}
    if params.campaign.generates:
        found["responses"] = str(out.responses)
    return {**found, "metrics": str(out.metrics)}


def plot_history(table: pd.DataFrame, summary: dict[str, Any], direction: str, path: Path) -> None:
    """Score of each trial in order, the best so far, and the references as horizontal lines: the baseline and
    the untuned base model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    searched = table[~table["baseline"] & (table["state"] != "prior")].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    scores = searched["score"].astype(float)
    ax.scatter(searched.index, scores, label="trial", color="tab:blue", zorder=3)
    best = scores.cummax() if direction == "maximize" else scores.cummin()
    ax.step(searched.index, best.ffill(), where="post", label="best so far", color="tab:green")
    failed = searched[searched["state"] == "failed"]
    if len(failed):
        ax.scatter(
            failed.index, [scores.min(skipna=True) or 0] * len(failed), marker="x", color="tab:red", label="failed"
        )
    priors = table[table["state"] == "prior"]["score"].astype(float)
    if len(priors):
        best_prior = priors.max() if direction == "maximize" else priors.min()
        ax.axhline(best_prior, linestyle=":", color="tab:purple", label=f"best of {len(priors)} warm-start priors")
    if summary["baseline_score"] is not None:
        ax.axhline(summary["baseline_score"], linestyle="--", color="tab:gray", label="litgpt defaults (baseline)")
    if summary.get("untuned_score") is not None:
        ax.axhline(summary["untuned_score"], linestyle="-.", color="tab:brown", label="untuned base model")
    n_init = summary.get("n_init", 0)
    if n_init:
        ax.axvspan(-0.5, n_init - 0.5, color="tab:orange", alpha=0.12, label="Latin-hypercube design")
    ax.set_xlabel("trial")
    ax.set_ylabel(summary["metric"])
    ax.set_title(f"campaign {summary['campaign']}: optimisation history")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    paths, _ = stage_args("Aggregate a campaign's trials into its report.", trial=False)
    print(json.dumps(report(paths), indent=2))


if __name__ == "__main__":
    main()
