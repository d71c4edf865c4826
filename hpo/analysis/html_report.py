"""Self-contained HTML reports (plotly) for one campaign or a comparison of several.

Sections: the summary (compare's row: best, quantiles, the untuned model's and the baseline's scores, counts),
optimisation history with best-so-far and the references (the baseline, the untuned model), parallel coordinates
of the hyperparameters coloured by score, hyperparameter importance (Optuna's fANOVA evaluator, seeded, over the
completed trials), score versus cost (training or generation tokens), the trials (state, score, costs, why a trial
failed or was pruned) and the lineage table (seeds, code revision, data and model hashes). Figures get fixed
element ids and the importance evaluator a fixed seed, so the same record gives the same file.
"""

from __future__ import annotations

import html
from typing import Any

import optuna
import pandas as pd

from hpo.analysis.compare import compare, not_comparable
from hpo.analysis.source import CampaignSource
from hpo.analysis.table import cost_column, searched, trials_table
from hpo.layout import UNTUNED

PLOTLY_CONFIG = {"displaylogo": False}
MIN_IMPORTANCE_TRIALS = 3
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _history(
    tables: dict[str, pd.DataFrame],
    baselines: dict[str, float | None],
    maximize: bool,
    untuned: dict[str, float | None] | None = None,
) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, table in tables.items():
        scores = table["score"].astype(float)
        best = scores.cummax() if maximize else scores.cummin()
        symbols = ["diamond" if state == "prior" else "circle" for state in table["state"]]
        fig.add_trace(
            go.Scatter(x=table["trial"], y=scores, mode="markers", name=f"{label}: trial", marker={"symbol": symbols})
        )
        fig.add_trace(
            go.Scatter(x=table["trial"], y=best.ffill(), mode="lines", line_shape="hv", name=f"{label}: best so far")
        )
        if baselines.get(label) is not None:
            fig.add_hline(y=baselines[label], line_dash="dash", annotation_text=f"{label}: litgpt defaults")
        if (untuned or {}).get(label) is not None:  # the base model before any tuning
            fig.add_hline(
                y=(untuned or {})[label],
                line_dash="dashdot",
                annotation_text=f"{label}: untuned",
                annotation_position="bottom right",
            )
    fig.update_layout(title="Optimisation history", xaxis_title="trial", yaxis_title="score", height=420)
    return fig


def _parallel(label: str, table: pd.DataFrame, names: list[str]) -> Any:
    import plotly.express as px

    done = table[table["state"] == "complete"].rename(columns=lambda c: c.removeprefix("params."))
    cols = [n for n in names if n in done and pd.api.types.is_numeric_dtype(done[n])]
    return px.parallel_coordinates(
        done,
        dimensions=[*cols, "score"],
        color="score",
        title=f"{label}: parallel coordinates (completed trials)",
        height=420,
    )


def importances(table: pd.DataFrame, space: dict[str, Any], maximize: bool) -> dict[str, float]:
    """fANOVA importance of each hyperparameter over the completed trials (empty with fewer than 3)."""
    import optuna
    from pydantic import TypeAdapter

    from hpo.config.space import Dimension, optuna_distribution

    done = table[(table["state"] == "complete") & table["score"].notna()]
    if len(done) < MIN_IMPORTANCE_TRIALS or done["score"].nunique() < 2:
        return {}  # too few trials, or all scored the same: no hyperparameter explains any variance

    adapter: TypeAdapter[Any] = TypeAdapter(Dimension)
    dists = {n: optuna_distribution(adapter.validate_python(d)) for n, d in space.items()}
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    for _, row in done.iterrows():
        params = {
            n: (
                int(row[f"params.{n}"])
                if isinstance(dists[n], optuna.distributions.IntDistribution)
                else row[f"params.{n}"]
            )
            for n in dists
        }
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(row["score"])))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def _no_importance(label: str, table: pd.DataFrame) -> str:
    """Says why the importance panel is missing: too few completed trials, or all scored the same."""
    done = table[(table["state"] == "complete") & table["score"].notna()]
    why = (
        f"needs at least {MIN_IMPORTANCE_TRIALS} completed trials, this campaign has {len(done)}"
        if len(done) < MIN_IMPORTANCE_TRIALS
        else f"all {len(done)} completed trials have the same score, so no hyperparameter explains any of it"
    )
    return f"<h3>{html.escape(label)}: hyperparameter importance</h3><p class='note'>Not shown: fANOVA {why}.</p>"


def _importance_figure(label: str, values: dict[str, float]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=list(values.values()), y=list(values.keys()), orientation="h"))
    fig.update_layout(title=f"{label}: hyperparameter importance (fANOVA)", height=320, xaxis_title="importance")
    return fig


def _cost(tables: dict[str, pd.DataFrame]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    columns = set()
    for label, table in tables.items():
        columns.add(cost_column(table))
        fig.add_trace(
            go.Scatter(x=table[cost_column(table)], y=table["score"], mode="markers", name=label, text=table["trial"])
        )
    names = {"train_tokens": "training tokens", "gen_tokens": "generation tokens (prompt + responses)"}
    title = " / ".join(names[c] for c in sorted(columns, reverse=True)) or "tokens"
    fig.update_layout(title="Score versus cost", xaxis_title=title, yaxis_title="score", height=380)
    return fig


def _trials_table(table: pd.DataFrame) -> str:
    """Every searched trial with its state, score, costs and, for a failed or pruned one, why."""
    columns = [
        c
        for c in (
            "trial",
            "state",
            "score",
            "train_tokens",
            "train_steps",
            "val_loss",
            "gen_tokens",
            "inference_cost",
            "evaluated",
            "reason",
        )
        if c in table.columns
    ]
    return table[columns].to_html(index=False, border=0, classes="trials", na_rep="", float_format=lambda x: f"{x:.4g}")


def _lineage_table(source: CampaignSource) -> str:
    lineage = source.lineage()
    trials = source.trials()
    rows = []
    for trial in sorted(trials):
        entry = lineage.get(trial, {})
        code = entry.get("code") or {}
        seeds = trials[trial].get("seeds", {})
        rows.append(
            {
                "trial": trial,
                "seeds": ", ".join(f"{k}={v}" for k, v in seeds.items()),
                "code": f"{(code.get('commit') or '')[:10]}{'+dirty' if code.get('dirty') else ''}",
                "data": (entry.get("data_hash") or "")[:12],
                "base model": (entry.get("base_model_hash") or "")[:12],
                "warm start from": entry.get("warm_start_from", ""),
                "wall s": entry.get("wall_seconds"),
            }
        )
    return pd.DataFrame(rows).to_html(index=False, border=0, classes="lineage", na_rep="")


def render(specs: list[str], root: Any = None) -> str:
    """The HTML report of one campaign (one spec) or a comparison (several)."""
    from pathlib import Path

    root = Path(".") if root is None else Path(root)
    sources = [CampaignSource.parse(s, root) for s in specs]
    tables: dict[str, pd.DataFrame] = {}
    baselines: dict[str, float | None] = {}
    untuned: dict[str, float | None] = {}
    figures: list[Any] = []
    maximize = True
    for source in sources:
        params = source.yaml(f"{source.dir}/params.yaml", {})
        maximize = params.get("eval", {}).get("direction", "maximize") == "maximize"
        everything = trials_table(source)
        table = searched(everything)
        tables[source.label] = table
        baselines[source.label] = (source.json(f"{source.dir}/trials/baseline/metrics.json") or {}).get("score")
        reference = everything[everything["trial"] == UNTUNED]["score"].dropna()
        untuned[source.label] = float(reference.iloc[0]) if len(reference) else None
    figures.append(_history(tables, baselines, maximize, untuned))
    for source in sources:
        params = source.yaml(f"{source.dir}/params.yaml", {})
        table = tables[source.label]
        if not table.empty:
            figures.append(_parallel(source.label, table, list(params.get("space", {}))))
            values = importances(table, params.get("space", {}), maximize)
            if values:
                figures.append(_importance_figure(source.label, values))
            else:
                figures.append(_no_importance(source.label, table))
    figures.append(_cost(tables))

    parts = []
    for i, fig in enumerate(figures):
        if isinstance(fig, str):  # a note in place of a figure that cannot be drawn
            parts.append(fig)
            continue
        parts.append(
            fig.to_html(
                full_html=False,
                include_plotlyjs="inline" if i == 0 else False,
                div_id=f"figure-{i}",
                config=PLOTLY_CONFIG,
            )
        )
    summary, diff = compare(specs, root)
    warnings = [f"<p class='warning'>warning: {html.escape(w)}</p>" for w in not_comparable(diff)]
    title = "Campaign " + sources[0].label if len(sources) == 1 else "Comparison: " + " vs ".join(tables)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2>",
        summary.to_html(index=False, border=0, float_format=lambda x: f"{x:.4g}", na_rep=""),
    ]
    body += warnings
    if len(sources) > 1:
        body += [
            "<h2>What differs</h2>",
            diff.to_html(index=False, border=0, na_rep="") if not diff.empty else "<p>nothing</p>",
        ]
    body += parts
    for source in sources:
        body += [f"<h2>Trials: {html.escape(source.label)}</h2>", _trials_table(tables[source.label])]
        body += [f"<h2>Lineage: {html.escape(source.label)}</h2>", _lineage_table(source)]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px} table{border-collapse:collapse;"
        "font-size:0.85em} td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
