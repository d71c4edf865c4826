"""Compare campaigns: a summary table and a diff of what differs between them.

A campaign is named `NAME` (the working tree) or `NAME@REV` (the campaign as committed at a git revision, read
with `git show`, so `default@main` against `default` compares a campaign across revisions). Everything is read
from the campaign's versioned record — frozen params, `trials.yaml`, every trial's `train.json` and
`metrics.json`, `dvc.lock` and the study's lineage — never recomputed.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.layout import CAMPAIGNS_DIR
from stages.records import parse_yaml, stage_key


@dataclass(frozen=True)
class CampaignSource:
    """Reads a campaign's files from the working tree or from a git revision."""

    name: str
    rev: str | None = None
    root: Path = Path(".")

    @classmethod
    def parse(cls, spec: str, root: Path = Path(".")) -> CampaignSource:
        name, _, rev = spec.partition("@")
        return cls(name, rev or None, root)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.rev}" if self.rev else self.name

    def read(self, relpath: str) -> str | None:
        """A file's text (relative to the workspace root), or None when it does not exist there."""
        if self.rev is None:
            path = self.root / relpath
            return path.read_text() if path.is_file() else None
        out = subprocess.run(
            ["git", "show", f"{self.rev}:{relpath}"], cwd=self.root, capture_output=True, text=True, check=False
        )
        return out.stdout if out.returncode == 0 else None

    def yaml(self, relpath: str, default: Any) -> Any:
        text = self.read(relpath)
        return default if text is None else parse_yaml(text, default)

    def json(self, relpath: str) -> dict[str, Any] | None:
        text = self.read(relpath)
        return json.loads(text) if text else None

    @property
    def dir(self) -> str:
        return f"{CAMPAIGNS_DIR}/{self.name}"


def trials_table(source: CampaignSource) -> pd.DataFrame:
    """One row per trial of a campaign: state, score, tokens, wall time, params (baseline excluded)."""
    trials = source.yaml(f"{source.dir}/trials.yaml", {})
    failures = source.yaml(f"{source.dir}/failures.yaml", {})
    rows = []
    for trial, record in sorted(trials.items()):
        if trial == "baseline":
            continue
        trained = source.json(f"{source.dir}/trials/{trial}/train.json") or {}
        scored = source.json(f"{source.dir}/trials/{trial}/metrics.json") or {}
        state = "failed" if trial in failures else scored.get("state", "running")
        rows.append(
            {
                "warm_start": False,
                "trial": trial,
                "state": state,
                "score": scored.get("score"),
                "tokens": trained.get("tokens"),
                "wall_seconds": trained.get("wall_seconds"),
                **record.get("params", {}),
            }
        )
    for prior in source.yaml(f"{source.dir}/warm_start.yaml", {}).get("observations", []):
        rows.append(
            {
                "warm_start": True,
                "trial": prior["source"],
                "state": "prior",
                "score": prior["score"],
                "tokens": None,
                "wall_seconds": None,
                **prior["params"],
            }
        )
    columns = ["warm_start", "trial", "state", "score", "tokens", "wall_seconds"]
    return pd.DataFrame(rows, columns=columns if not rows else None)


def summary(source: CampaignSource, table: pd.DataFrame, direction: str) -> dict[str, Any]:
    """The comparison row of one campaign."""
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
        "baseline": baseline.get("score"),
        "complete": int((table["state"] == "complete").sum()),
        "failed": int((table["state"] == "failed").sum()),
        "tokens": int(table["tokens"].fillna(0).sum()),
        "train_wall_s": round(float(table["wall_seconds"].fillna(0).sum()), 1),
    }


def settings(source: CampaignSource) -> dict[str, Any]:
    """What defines a campaign's results, flattened to dotted keys: hashes, code, space, strategy, seed, train, eval."""
    params = source.yaml(f"{source.dir}/params.yaml", {})
    lock = source.yaml("dvc.lock", {}).get("stages", {})

    def out_md5(stage: str, path: str) -> str | None:
        return next((o.get("md5") for o in lock.get(stage, {}).get("outs", []) if o.get("path") == path), None)

    # Content hashes of the data splits and model files (lineage.yaml) say whether two campaigns used the same data
    # and model; DVC's folder hashes also cover files that name the campaign (rendered task YAMLs), so they are the
    # fallback for records without lineage.
    lineage: dict[str, Any] = next(iter(source.yaml(f"{source.dir}/lineage.yaml", {}).values()), {})
    flat: dict[str, Any] = {
        "data.hash": lineage.get("data_hash") or out_md5(f"prepare_data@{source.name}", f"{source.dir}/data"),
        "base_model.hash": lineage.get("base_model_hash")
        or out_md5(f"base_model@{source.name}", f"{source.dir}/base_model"),
        "code.revision": _code_revision(source),
    }
    for section in ("campaign", "space", "data", "model", "train", "eval"):
        flat.update(_flatten(params.get(section, {}), section))
    flat.pop("campaign.name", None)
    return flat


def _code_revision(source: CampaignSource) -> str | None:
    # The revisions the trials ran at (lineage.yaml), which may be several when a campaign was resumed.
    lineage = source.yaml(f"{source.dir}/lineage.yaml", {})
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


__all__ = ["CampaignSource", "compare", "stage_key"]
