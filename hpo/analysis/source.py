"""Where a campaign's record is read from: the working tree, or a git revision (`NAME@REV`).

Everything the analysis shows is read from the campaign's versioned record — frozen params, every trial's decision,
lineage, `train.json`, `metrics.json` and `dvc.lock` (or, for campaigns recorded before per-trial records, the
campaign's `trials.yaml` and `lineage.yaml` and the root `dvc.lock`) — never recomputed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.files import parse_yaml
from hpo.layout import CAMPAIGNS_DIR


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

    def trial_files(self, name: str) -> Iterator[tuple[str, str]]:
        """(trial id, text) of each trial's own record file `name` (`trial.yaml`, `lineage.yaml`), in id order; at
        a revision, read with one `git cat-file --batch` for all of them."""
        folder = f"{self.dir}/trials"
        if self.rev is None:
            base = self.root / folder
            for path in sorted(base.glob(f"*/{name}")) if base.is_dir() else []:
                yield path.parent.name, path.read_text()
            return
        listed = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", self.rev, "--", folder],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        wanted = sorted(p for p in listed if p.endswith(f"/{name}") and p.count("/") == folder.count("/") + 2)
        if not wanted:
            return
        out = subprocess.run(
            ["git", "cat-file", "--batch"],
            input="".join(f"{self.rev}:{p}\n" for p in wanted).encode(),
            cwd=self.root,
            capture_output=True,
            check=True,
        ).stdout
        at = 0
        for file in wanted:  # each object: "<sha> blob <size>\n<content>\n"
            header_end = out.index(b"\n", at)
            size = int(out[at:header_end].split()[2])
            yield Path(file).parent.name, out[header_end + 1 : header_end + 1 + size].decode()
            at = header_end + size + 2

    def trials(self) -> dict[str, Any]:
        """Every trial's decision: id -> {params, seeds, …}."""
        trials = self.yaml(f"{self.dir}/trials.yaml", {})
        for _, text in self.trial_files("trial.yaml"):
            trials.update(parse_yaml(text, {}))
        return dict(sorted(trials.items()))

    def lineage(self) -> dict[str, Any]:
        """Every trial's lineage: id -> entry."""
        entries = self.yaml(f"{self.dir}/lineage.yaml", {})
        for trial, text in self.trial_files("lineage.yaml"):
            entries[trial] = parse_yaml(text, {})
        return dict(sorted(entries.items()))

    def stage_lock(self, stage: str) -> dict[str, Any]:
        """DVC's lock entry of a stage: `<name>@<key>` in the root `dvc.lock`, or `<folder>/dvc.yaml:<name>` (a
        trial's own stage) in the `dvc.lock` beside that dvc.yaml."""
        pipeline, _, name = stage.rpartition(":")
        lock = f"{pipeline.removesuffix('dvc.yaml')}dvc.lock" if pipeline else "dvc.lock"
        return (self.yaml(lock, {}).get("stages") or {}).get(name, {})

    def locked_md5(self, stage: str, path: str) -> str | None:
        """The hash DVC recorded in `dvc.lock` for the output `path` of `stage` (outs, metrics or plots)."""
        entry = self.stage_lock(stage)
        outs = [o for kind in ("outs", "metrics", "plots") for o in entry.get(kind) or []]
        return next((o.get("md5") for o in outs if o.get("path") == path), None)
