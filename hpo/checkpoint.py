"""Base-model checkpoints: what a litgpt checkpoint folder must hold, and where a campaign's base model is.

The base_model stage either builds the tiny default model into `campaigns/<name>/base_model/` or writes a pointer
file there (`checkpoint.json`) naming the user's checkpoint folder; `resolve_checkpoint` follows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def merged_state(adapter_dir: Path, base: dict[str, Any]) -> dict[str, Any]:
    """The weights of `base` with the LoRA adapter in `adapter_dir` merged in, computed in memory as litgpt's
    `merge_lora` script computes the `lit_model.pth` it writes (the same calls on the same tensors: LoRA GPT with
    the adapter's `lora_*` hyperparameters, base weights updated with the adapter's, cast to the adapter's dtype,
    `merge_lora_weights`, LoRA weights dropped and `linear.` removed from the names), so that a model evaluated
    from it gives the same bytes as one loaded from the merge stage's checkpoint, without writing that checkpoint.

    `base` is a warm worker's cached base weights (`hpo.cache.base_state`) and stays unchanged: the only
    tensors the merge adds into in place, the weights under a LoRA layer, are copied first; every other tensor of
    the result is the base's own (no second copy of the model).

    Args:
        adapter_dir: a train_lora adapter folder (`lit_model.pth.lora`, `hyperparameters.yaml`, model config).
        base: the base checkpoint's weights (a `lit_model.pth` state dict).
    """
    import torch
    from litgpt.lora import GPT, Config, lora_filter, merge_lora_weights
    from litgpt.scripts.merge_lora import load_lora_metadata

    lora_params, _, _ = load_lora_metadata(adapter_dir)
    config = Config.from_file(adapter_dir / "model_config.yaml", **lora_params)
    with torch.device("meta"):
        model = GPT(config)
    model.cos = None  # as litgpt's script: the rope cache is not needed to merge
    model.sin = None
    lora = torch.load(adapter_dir / "lit_model.pth.lora", map_location="cpu", mmap=True, weights_only=True)
    lora = lora.get("model", lora)
    merged_layers = {key.removesuffix(".lora_A") for key in lora if key.endswith(".lora_A")}
    state = {key: value.clone() if key.rpartition(".")[0] in merged_layers else value for key, value in base.items()}
    state.update(lora)
    model.load_state_dict(state, assign=True)
    model.to(dtype=next(iter(lora.values())).dtype, device="cpu")
    merge_lora_weights(model)
    return {k.replace("linear.", ""): v for k, v in model.state_dict().items() if not lora_filter(k, v)}


def copy_checkpoint(checkpoint_dir: Path, to: Path) -> Path:
    """Copies a checkpoint folder's files into `to` (created); returns `to`."""
    import shutil

    shutil.copytree(checkpoint_dir, to, dirs_exist_ok=True)
    return to


def loading_instructions(checkpoint_dir: Path, trial: str = "<campaign> <trial>") -> str:
    """How to load a merged checkpoint with litgpt, and how to get a Hugging Face transformers folder of it
    (`trial`: the campaign and trial, as `campaign export` names them)."""
    return f"""merged checkpoint: {checkpoint_dir}

litgpt (a complete litgpt checkpoint folder):
  litgpt generate {checkpoint_dir} --prompt "..."      # or: litgpt chat / litgpt serve / litgpt evaluate
  python: from litgpt import LLM; llm = LLM.load("{checkpoint_dir}")

Hugging Face transformers (a complete folder: config, safetensors weights, tokenizer; no download needed):
  campaign export {trial} --format hf --to DIR
  python: from transformers import AutoModelForCausalLM, AutoTokenizer
          model = AutoModelForCausalLM.from_pretrained("DIR"); tokenizer = AutoTokenizer.from_pretrained("DIR")"""
