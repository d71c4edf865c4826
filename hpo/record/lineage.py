"""Lineage: what a trial's result depends on, recorded so it can be traced and rebuilt.

Content hashes, the code revision and library versions; the flow stores them as Optuna user attributes and
in each trial's record.
"""

from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "litgpt", "lightning", "lm_eval", "optuna", "dvc", "prefect", "scikit-optimize", "transformers")


def hash_path(path: Path) -> str:
    """A sha256 over a file, or over every file of a folder (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


DATA_FILES = ("train.json", "val.json", "eval.jsonl")
MODEL_FILES = ("lit_model.pth", "model_config.yaml", "tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def hash_files(folder: Path, names: tuple[str, ...]) -> str:
    """A sha256 over the named files of a folder that exist (names and contents): the content that matters,
    without files that only say where they were made (rendered task YAMLs, run configs)."""
    digest = hashlib.sha256()
    for name in names:
        if (folder / name).is_file():
            digest.update(name.encode())
            digest.update(bytes.fromhex(hash_path(folder / name)))
    return digest.hexdigest()


def code_revision(root: Path = Path(".")) -> dict[str, object]:
    """The git commit of the workspace and whether tracked code differs from it."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD") or None
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "hpo", "stages", "flows", "pyproject.toml"))
    return {"commit": commit, "dirty": dirty}


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a result depends on."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
