"""Warm start: earlier campaigns' completed trials enter a new study as prior observations.

Each completed trial of a source campaign (not its baseline) whose hyperparameters have the new space's names and
lie inside it becomes an Optuna trial added with `study.add_trial`, with its provenance (source campaign, trial,
data and base-model hashes) as user attributes; the others are skipped and counted. Sources must have been run on
the same data and base model (their recorded content hashes): otherwise the warm start is refused unless the
campaign says `warm_start.allow_different_data: true`. The observations are also written to
`campaigns/<name>/warm_start.yaml`, which the report reads to mark them.
"""

from __future__ import annotations

from typing import Any

import optuna

from hpo.config import Params
from hpo.files import read_json, read_yaml, write_yaml
from hpo.layout import BASELINE, CampaignPaths
from hpo.record.records import read_lineage, read_trials
from hpo.search.proposers import distributions

WARM = "warm_start_from"


class WarmStartError(ValueError):
    """A source campaign that cannot be used; the message names it and what differs."""


def collect_priors(paths: CampaignPaths, params: Params, lineage: dict[str, Any]) -> tuple[list[dict], int]:
    """The usable observations of the campaign's warm-start sources.

    Args:
        paths: the new campaign.
        params: its declaration (space, warm_start).
        lineage: its own lineage (data_hash, base_model_hash) to check the sources against.

    Returns:
        The observations `{source, params, score, data_hash, base_model_hash}` and how many were skipped.

    Raises:
        WarmStartError: a source is missing, or was run on other data or another base model without permission.
    """
    priors: list[dict] = []
    skipped = 0
    for name in params.campaign.warm_start.campaigns:
        source = CampaignPaths(name, paths.root)
        if not source.params.is_file():
            raise WarmStartError(f"campaign.warm_start.campaigns: no campaign {name!r} (expected {source.params})")
        source_lineage = read_lineage(source)
        for trial, record in sorted(read_trials(source).items()):
            if trial == BASELINE:
                continue
            metrics = read_json(source.trial(trial).metrics)
            if not metrics or metrics.get("state") != "complete" or metrics.get("score") is None:
                continue
            origin = source_lineage.get(trial, {})
            for key in ("data_hash", "base_model_hash"):
                if origin.get(key) != lineage.get(key) and not params.campaign.warm_start.allow_different_data:
                    raise WarmStartError(
                        f"campaign.warm_start: {name}/{trial} was run with {key} {str(origin.get(key))[:12]}, "
                        f"this campaign has {str(lineage.get(key))[:12]}; expected the same, or set "
                        "campaign.warm_start.allow_different_data: true"
                    )
            values = record["params"]
            if set(values) != set(params.space) or not all(params.space[k].contains(v) for k, v in values.items()):
                skipped += 1
                continue
            priors.append(
                {
                    "source": f"{name}/{trial}",
                    "params": values,
                    "score": float(metrics["score"]),
                    "data_hash": origin.get("data_hash"),
                    "base_model_hash": origin.get("base_model_hash"),
                }
            )
    return priors, skipped


def warm_start(study: optuna.Study, paths: CampaignPaths, params: Params, lineage: dict[str, Any]) -> dict[str, int]:
    """Adds the sources' observations to the study once (a resumed campaign does not add them again)."""
    if not params.campaign.warm_start.campaigns:
        return {"added": 0, "skipped": 0}
    if any(is_warm(t) for t in study.get_trials(deepcopy=False)):
        return read_yaml(paths.warm_start, {}).get("counts", {"added": 0, "skipped": 0})
    priors, skipped = collect_priors(paths, params, lineage)
    dists = distributions(params)
    for prior in priors:
        study.add_trial(
            optuna.trial.create_trial(
                params=prior["params"],
                distributions=dists,
                value=prior["score"],
                user_attrs={
                    WARM: prior["source"],
                    "data_hash": prior["data_hash"],
                    "base_model_hash": prior["base_model_hash"],
                },
            )
        )
    counts = {"added": len(priors), "skipped": skipped}
    write_yaml(paths.warm_start, {"counts": counts, "observations": priors})
    return counts


def is_warm(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a study trial is a prior observation rather than a trial of this campaign."""
    return WARM in trial.user_attrs
