"""Compare campaigns: a summary table and a diff of what differs between them.

A campaign is named `NAME` (the working tree) or `NAME@REV` (the campaign as committed at a git revision, read
with `git show`, so `default@main` against `default` compares a campaign across revisions). Everything is read
from the campaign's versioned record — frozen params, every trial's decision, `train.json` and
`metrics.json`, `dvc.lock` and the study's lineage — never recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hpo.analysis.source import CampaignSource
from hpo.analysis.table import cost_column, searched, trials_table
from hpo.layout import UNTUNED


def summary(source: CampaignSource, table: pd.DataFrame, direction: str) -> dict[str, Any]:
    """The comparison row of one campaign: the searched trials' scores, and the references beside them — `untuned`
    (the base model before any tuning; blank for a campaign recorded before it existed, or whose evaluation
    failed) and `baseline` (litgpt's default LoRA, or the generate section's settings)."""
    untuned = table[table["trial"] == UNTUNED]["score"].dropna()
    table = searched(table)
    done = table[table["state"] == "complete"]["score"].dropna().astype(float)
    baseline = source.json(f"{source.dir}/trials/baseline/metrics.json") or {}
    best = (done.max() if direction == "maximize" else done.min()) if len(done) else None
    return {
        "campaign": source.label,
        "best": best,
        "q75": done.quantile(0.75) if len(done) else None,
        "median": done.median() if len(done) else None,
        "q25": done.quantile(0.25) if len(done) else None,
        "worst": (done.min() if direction == "maximize" else done.max()) if len(done) else None,
        "untuned": float(untuned.iloc[0]) if len(untuned) else None,
        "baseline": baseline.get("score"),
        "complete": int((table["state"] == "complete").sum()),
        "failed": int((table["state"] == "failed").sum()),
        "pruned": int((table["state"] == "pruned").sum()),
        "tokens": int(table[cost_column(table)].fillna(0).sum()),
        "wall_s": round(float(table["wall_seconds"].fillna(0).sum()), 1),
    }


def settings(source: CampaignSource) -> dict[str, Any]:
    """What defines a campaign's results, flattened to dotted keys: hashes, code, space, strategy, seed, model, train,
    eval, and the generate section of a campaign that generates."""
    params = source.yaml(f"{source.dir}/params.yaml", {})
    # Content hashes of the data splits and model files (lineage.yaml) say whether two campaigns used the same data
    # and model; DVC's folder hashes also cover files that name the campaign (rendered task YAMLs), so they are the
    # fallback for records without lineage.
    lineage: dict[str, Any] = next(iter(source.lineage().values()), {})
    flat: dict[str, Any] = {
        "data.hash": lineage.get("data_hash") or source.locked_md5(f"prepare_data@{source.name}", f"{source.dir}/data"),
        "base_model.hash": lineage.get("base_model_hash")
        or source.locked_md5(f"base_model@{source.name}", f"{source.dir}/base_model"),
        "code.revision": _code_revision(source),
    }
    kind = (params.get("campaign") or {}).get("kind") or "finetune"
    for section in (
        "campaign",
        "space",
        "data",
        "model",
        "train",
        "eval",
        *(("generate",) if kind != "finetune" else ()),
    ):
        flat.update(_flatten(params.get(section, {}), section))
    flat.pop("campaign.name", None)
    return flat


def _code_revision(source: CampaignSource) -> str | None:
    # The revisions the trials ran at (lineage.yaml), which may be several when a campaign was resumed.
    lineage = source.lineage()
    revisions = sorted(
        {
            f"{(c.get('commit') or '')[:12]}{'+dirty' if c.get('dirty') else ''}"
            for c in (entry.get("code") or {} for entry in lineage.values())
            if c
        }
    )
    return ",".join(revisions) or source.rev


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


# Settings that change what a score means: campaigns that differ in one of them cannot be ranked by score.
SCORE_DEFINING = ("eval.tasks", "eval.metric", "eval.direction", "eval.limit", "eval.num_fewshot", "eval.task_dir")


def not_comparable(diff: pd.DataFrame) -> list[str]:
    """One warning per setting that changes what the score means and differs between the compared campaigns."""
    if diff.empty:
        return []
    rows = diff[diff["setting"].isin(SCORE_DEFINING)]
    return [
        f"scores are not comparable: {row['setting']} differs ("
        + "; ".join(f"{label}: {row[label]}" for label in diff.columns[1:])
        + ")"
        for _, row in rows.iterrows()
    ]


def compare(specs: list[str], root: Path = Path(".")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compares campaigns.

    Args:
        specs: campaign names, each optionally `@REV`.
        root: the workspace.

    Returns:
        The summary table (one row per campaign) and the diff (one row per setting that differs).
    """
    sources = [CampaignSource.parse(s, root) for s in specs]
    rows, flat = [], {}
    for source in sources:
        if source.read(f"{source.dir}/params.yaml") is None:
            raise FileNotFoundError(
                f"{source.label}: no campaign (expected {source.dir}/params.yaml"
                f"{' at ' + source.rev if source.rev else ''})"
            )
        direction = source.yaml(f"{source.dir}/params.yaml", {}).get("eval", {}).get("direction", "maximize")
        rows.append(summary(source, trials_table(source), direction))
        flat[source.label] = settings(source)
    keys = sorted({k for f in flat.values() for k in f})
    diff = [
        {"setting": k, **{label: f.get(k) for label, f in flat.items()}}
        for k in keys
        if len({json.dumps(f.get(k), sort_keys=True) for f in flat.values()}) > 1
    ]
    return pd.DataFrame(rows), pd.DataFrame(diff)


__all__ = ["CampaignSource", "compare"]
