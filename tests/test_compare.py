"""Comparing campaigns (table and diff, across git revisions) and the HTML report, on synthetic records."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hpo.analysis.compare import compare
from hpo.analysis.html_report import importances, render

from .synthetic import write_campaign


def _git(ws: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=ws, check=True, capture_output=True)


def test_compare_table_and_diff(workspace: Path) -> None:
    write_campaign(workspace, "a", 20, seed=1, n_failed=2)
    write_campaign(workspace, "b", 30, seed=2, sampler="gp", data_hash="e" * 32)
    summary, diff = compare(["a", "b"], workspace)
    rows = summary.set_index("campaign")
    assert rows.loc["a", "complete"] == 18 and rows.loc["a", "failed"] == 2
    assert rows.loc["b", "complete"] == 30 and rows.loc["b", "failed"] == 0
    assert rows.loc["a", "worst"] <= rows.loc["a", "q25"] <= rows.loc["a", "median"] <= rows.loc["a", "best"]
    differs = set(diff["setting"])
    assert {"campaign.seed", "campaign.sampler", "campaign.n_trials", "data.hash"} <= differs
    assert "space.learning_rate.low" not in differs and "campaign.name" not in differs


def test_compare_across_git_revisions(workspace: Path) -> None:
    write_campaign(workspace, "a", 10, seed=1)
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-qm", "campaign a, 10 trials")
    write_campaign(workspace, "a", 14, seed=1)  # the campaign went on in the working tree
    summary, diff = compare(["a@HEAD", "a"], workspace)
    assert list(summary["campaign"]) == ["a@HEAD", "a"]
    assert list(summary["complete"]) == [10, 14]
    assert list(diff[diff["setting"] == "campaign.n_trials"].iloc[0][["a@HEAD", "a"]]) == [10, 14]


def test_html_report_is_self_contained_and_stable(workspace: Path) -> None:
    write_campaign(workspace, "a", 12, seed=1)
    write_campaign(workspace, "b", 12, seed=2)
    page = render(["a", "b"], workspace)
    assert page.startswith("<!DOCTYPE html>") and "Optimisation history" in page
    assert "parallel coordinates" in page and "importance (fANOVA)" in page and "Score versus cost" in page
    assert "Lineage: a" in page and "What differs" in page
    assert "<script src=" not in page, "plotly is inlined: the file opens offline"
    assert render(["a", "b"], workspace) == page


def test_importance_finds_the_hyperparameter_that_matters(workspace: Path) -> None:
    from hpo.analysis.source import CampaignSource
    from hpo.analysis.table import trials_table
    from hpo.config import load_params

    write_campaign(workspace, "a", 40, seed=3)
    table = trials_table(CampaignSource("a", root=workspace))
    space = load_params(workspace / "campaigns/a/params.yaml").model_dump(mode="json")["space"]
    values = importances(table, space, maximize=True)
    assert max(values, key=values.get) == "learning_rate"


def _warm_params(workspace: Path, sources: list[str], allow: bool = False, lr_high: float = 0.3):
    from hpo.config import load_params

    params = load_params(workspace / "params.yaml")
    space = dict(params.space)
    space["learning_rate"] = space["learning_rate"].model_copy(update={"high": lr_high})
    warm = params.campaign.warm_start.model_copy(update={"campaigns": sources, "allow_different_data": allow})
    campaign = params.campaign.model_copy(update={"name": "new", "warm_start": warm})
    return params.model_copy(update={"campaign": campaign, "space": space})


def test_warm_start_takes_priors_skips_out_of_space_and_checks_hashes(workspace: Path) -> None:
    from hpo.layout import CampaignPaths
    from hpo.record.warm_start import WarmStartError, collect_priors

    write_campaign(workspace, "old", 30, seed=4, n_failed=5)
    paths = CampaignPaths("new", workspace)
    same = {"data_hash": "d" * 32, "base_model_hash": None}
    priors, skipped = collect_priors(paths, _warm_params(workspace, ["old"], lr_high=0.01), same)
    assert len(priors) + skipped == 25, "failed trials are not priors"
    assert skipped > 0 and all(p["params"]["learning_rate"] <= 0.01 for p in priors)
    assert all(p["source"].startswith("old/t") and p["data_hash"] == "d" * 32 for p in priors)

    other = {"data_hash": "e" * 32, "base_model_hash": None}
    with pytest.raises(WarmStartError, match=r"campaign.warm_start: old/t\d+ was run with data_hash dddddddddddd"):
        collect_priors(paths, _warm_params(workspace, ["old"]), other)
    allowed, _ = collect_priors(paths, _warm_params(workspace, ["old"], allow=True), other)
    assert len(allowed) == 25
    with pytest.raises(WarmStartError, match="no campaign 'missing'"):
        collect_priors(paths, _warm_params(workspace, ["missing"]), same)


def test_the_untuned_reference_beside_the_baseline(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The untuned model's score (its `untuned/metrics.json`) is a reference row of the trials table — first, never
    the best nor counted as searched, the other columns keeping their kind — `untuned_score` in best.json, a line
    in the history plots, an `untuned` column beside `baseline` in compare (blank for a campaign recorded before it)
    and in the run's final lines; a failed evaluation is a failed row and says why."""
    import json

    import pandas as pd

    from flows.progress import Progress
    from hpo.analysis.source import CampaignSource
    from hpo.analysis.table import trials_table
    from hpo.config import load_params
    from hpo.files import write_yaml
    from hpo.layout import CampaignPaths
    from stages.report import report

    write_campaign(workspace, "a", 6, seed=1, n_failed=1)
    write_campaign(workspace, "old", 4, seed=2)  # recorded before the untuned reference
    paths = CampaignPaths("a", workspace)
    paths.untuned.dir.mkdir()
    paths.untuned.metrics.write_text(json.dumps({"state": "complete", "score": 0.3, "evaluation": {"instances": 60}}))
    table = trials_table(CampaignSource("a", root=workspace))
    assert list(table["trial"]) == ["untuned", *(f"t{i:03d}" for i in range(6))]
    assert table.iloc[0]["baseline"] and table.iloc[0]["score"] == 0.3 and pd.isna(table.iloc[0]["params.lora_r"])
    assert str(table["train_tokens"].dtype) == "Int64" and str(table["params.lora_r"].dtype) == "Int64"

    summary = report(paths)
    assert summary["untuned_score"] == 0.3 and summary["best"]["trial"] != "untuned"
    assert summary["completed"] == 5 and summary["failed"] == 1
    lines = (paths.report / "trials.csv").read_text().splitlines()
    assert lines[1].startswith("untuned,True,complete,0.3,") and lines[2].startswith("t000,False,failed,")
    header, t001 = lines[0].split(","), lines[3].split(",")
    assert t001[header.index("train_tokens")].isdigit() and t001[header.index("params.lora_r")].isdigit()
    assert "untuned_score" not in report(CampaignPaths("old", workspace)), "an older record's best.json as it was"

    compared, _ = compare(["a", "old"], workspace)
    columns = list(compared.columns)
    assert columns.index("untuned") == columns.index("baseline") - 1
    rows = compared.set_index("campaign")
    assert rows.loc["a", "untuned"] == 0.3 and pd.isna(rows.loc["old", "untuned"]) and rows.loc["a", "complete"] == 5
    page = render(["a"], workspace)
    assert "a: untuned" in page and "<th>untuned</th>" in page

    Progress(load_params(paths.params)).final(summary)
    out = capsys.readouterr().out
    best = summary["best"]
    assert f"untuned 0.3000   baseline (litgpt default LoRA) -   best {best['trial']} {best['score']:.4f}" in out

    paths.untuned.metrics.unlink()  # its evaluation raised: recorded in failures.yaml, the campaign went on
    write_yaml(paths.failures, {"t000": "RuntimeError: synthetic", "untuned": "RuntimeError: no memory"})
    summary = report(paths)
    assert summary["untuned_score"] is None and summary["untuned_failed"] == "RuntimeError: no memory"
    assert (paths.report / "trials.csv").read_text().splitlines()[1].startswith("untuned,True,failed,,")
    Progress(load_params(paths.params)).final(summary)
    assert "untuned failed (RuntimeError: no memory)   baseline" in capsys.readouterr().out
