"""Base-model checkpoints: what a litgpt checkpoint folder must hold, and where a campaign's base model is.

The base_model stage either builds the tiny default model into `campaigns/<name>/base_model/` or writes a pointer
file there (`checkpoint.json`) naming the user's checkpoint folder; `resolve_checkpoint` follows it.
"""

from __future__ import annotations

import json
from pathlib import Path

POINTER = "checkpoint.json"
REQUIRED_FILES = ("lit_model.pth", "model_config.yaml", "tokenizer_config.json")


class CheckpointError(ValueError):
    """A checkpoint folder that litgpt cannot load; the message names the folder and the missing files."""


def check_checkpoint(checkpoint_dir: Path) -> None:
    """Checks that `checkpoint_dir` holds a litgpt checkpoint (weights, config, tokenizer files).

    Raises:
        CheckpointError: naming the folder and every missing file.
    """
    if not checkpoint_dir.is_dir():
        raise CheckpointError(f"model.checkpoint_dir: {checkpoint_dir} is not a folder; expected a litgpt checkpoint")
    missing = [f for f in REQUIRED_FILES if not (checkpoint_dir / f).is_file()]
    if not any((checkpoint_dir / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        missing.append("tokenizer.json or tokenizer.model")
    if missing:
        raise CheckpointError(f"model.checkpoint_dir: {checkpoint_dir} is missing {', '.join(missing)}")


def resolve_checkpoint(base_model_dir: Path, root: Path = Path(".")) -> Path:
    """The checkpoint folder a campaign's base_model stage produced (the tiny model, or the user's folder). A pointer
    to a folder inside the workspace is relative to it, the working directory of every stage, and stays relative:
    what litgpt writes about its base (an adapter's hyperparameters.yaml) is then the same in every clone. (litgpt
    takes a relative path that does not hold a checkpoint for a hub name: the pointer's folder is checked first.)
    `root` is the workspace, as `base_model_dir` is given under it (a stage's working directory: `.`)."""
    pointer = base_model_dir / POINTER
    if pointer.is_file():
        path = root / json.loads(pointer.read_text())["checkpoint_dir"]  # an absolute one stays absolute
        check_checkpoint(path)
        return path
    return base_model_dir
