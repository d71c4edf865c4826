"""A campaign recorded by the code before the `hpo` package (commit 41f1586) still reports, traces and compares.

`tests/fixtures/legacy/` holds that campaign's record as a user would have committed it (no model weights):
frozen params, decisions, lineage, the study journal, each trial's train.json / metrics.json / loss.csv, the
report and dvc.lock. It was made by running `campaign run` at that commit on a 3-trial campaign.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpo.analysis.compare import compare
from hpo.analysis.html_report import render
from hpo.analysis.source import CampaignSource
from hpo.analysis.table import trials_table
from hpo.analysis.trace import manifest
from hpo.layout import CampaignPaths
from stages.report import report

from .helpers import ROOT, make_workspace

FIXTURE = ROOT / "tests/fixtures/legacy"


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = make_workspace(tmp_path / "ws")
    shutil.copytree(FIXTURE, ws, dirs_exist_ok=True)
    monkeypatch.chdir(ws)
    return ws


def test_report_rebuilds_the_recorded_trials_table(legacy: Path) -> None:
    paths = CampaignPaths("legacy", legacy)
    recorded = (paths.report / "trials.csv").read_bytes()
    summary = report(paths)
    assert (paths.report / "trials.csv").read_bytes() == recorded
    old = json.loads((FIXTURE / "campaigns/legacy/report/best.json").read_text())
    assert {k: summary[k] for k in ("best", "baseline_score", "completed", "failed")} == {
        k: old[k] for k in ("best", "baseline_score", "completed", "failed")
    }


def test_status_table_trace_and_compare_read_it(legacy: Path) -> None:
    table = trials_table(CampaignSource("legacy", root=legacy))
    assert list(table["trial"]) == ["baseline", "t000", "t001"]
    assert list(table["state"]) == ["complete"] * 3
    assert table["wall_seconds"].notna().all(), "trial wall times come from lineage.yaml"

    record = manifest(CampaignPaths("legacy", legacy), "t001")
    assert record["params"] and record["seeds"]["train"] and record["code"]["commit"]
    assert record["hashes"]["adapter"]["md5"].endswith(".dir") and record["hashes"]["metrics"]["md5"]
    assert record["score"] == 0.25

    summary, diff = compare(["legacy"], legacy)
    assert summary.iloc[0]["complete"] == 2 and summary.iloc[0]["best"] == 0.25 and diff.empty
    page = render(["legacy"], legacy)
    assert "Campaign legacy" in page and "Not shown: fANOVA" in page


def test_cli_status_of_the_old_record(legacy: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "status", "legacy"], cwd=legacy, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("complete") == 3 and "wall_seconds" in done.stdout
