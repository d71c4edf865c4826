"""Shared fixtures: the repository root and a disposable workspace that mirrors it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE_FILES = (
    "hpo",
    "stages",
    "flows",
    "data",
    "dvc.yaml",
    "params.yaml",
    "campaigns/registry.yaml",
    ".dvc/config",
    ".dvc/.gitignore",
    ".gitignore",
    ".dvcignore",
    "tests/params.e2e.yaml",
)


def make_workspace(path: Path) -> Path:
    """A fresh git + DVC workspace holding the project's code and data, as a clean clone would."""
    path.mkdir(parents=True, exist_ok=True)
    for name in WORKSPACE_FILES:
        src, dst = ROOT / name, path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ws"], cwd=path, check=True)
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = make_workspace(tmp_path / "ws")
    monkeypatch.chdir(ws)
    return ws
