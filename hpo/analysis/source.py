"""Where a campaign's record is read from: the working tree, or a git revision (`NAME@REV`).

Everything the analysis shows is read from the campaign's versioned record — frozen params, `trials.yaml`, every
trial's `train.json` and `metrics.json`, `lineage.yaml`, `dvc.lock` — never recomputed.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.record.files import parse_yaml
from hpo.record.layout import CAMPAIGNS_DIR


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

    def locked_md5(self, stage: str, path: str) -> str | None:
        """The hash DVC recorded in `dvc.lock` for the output `path` of `stage` (outs, metrics or plots)."""
        entry = self.yaml("dvc.lock", {}).get("stages", {}).get(stage, {})
        outs = [o for kind in ("outs", "metrics", "plots") for o in entry.get(kind) or []]
        return next((o.get("md5") for o in outs if o.get("path") == path), None)
