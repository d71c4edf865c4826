"""train_lora: fine-tune one trial's LoRA adapter with `litgpt finetune_lora`.

The trial's hyperparameters are applied to the campaign's fixed training settings and handed to litgpt as a
config YAML (kept beside the adapter, so `litgpt finetune_lora --config adapter/finetune_lora.yaml` replays it).
Gradient accumulation is litgpt's `global_batch_size / micro_batch_size`. The stage writes the adapter
(`lit_model.pth.lora` and the checkpoint's config files), the train/validation loss curve (a DVC plot) and
`train.json` (a DVC metric: tokens seen, steps, LoRA weights, final losses, state — no wall time, so a rebuild
reproduces it byte for byte; the flow records times in `lineage.yaml`). A run whose loss becomes NaN or infinite
is recorded as `state: failed` with the reason rather than raising, so the failure itself is a
reproducible result and the campaign goes on. A trial that the campaign's pruner stopped (`campaign.pruner`) is
trained to the step its record names and recorded as `state: pruned` (`hpo.search.training_pruning`); only a warm
worker's live run, which hands the stage its `Pruners`, asks the pruner (`hpo.trials.pruners`).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

from hpo.cache import base_state, pin_threads
from hpo.checkpoint import resolve_checkpoint
from hpo.config import Params, TrainSection, load_params
from hpo.internals.litgpt import lora_hooks
from hpo.layout import CampaignPaths, TrialPaths, stage_args
from hpo.litgpt_cli import run_litgpt
from hpo.placement import Devices, placement
from hpo.record.records import read_trial
from hpo.search.training_pruning import Stop
from hpo.trials.pruners import Pruners, stop_for


def finetune_config(train: TrainSection, checkpoint_dir: Path, data_dir: Path, out_dir: Path, seed: int) -> dict:
    """The `litgpt finetune_lora` config for one trial."""
    prompt_style: Any = {"class_path": train.prompt_style} if "." in train.prompt_style else train.prompt_style
    return {
        "checkpoint_dir": str(checkpoint_dir),
        "out_dir": str(out_dir),
        # on one device (litgpt's default `devices: 1`): cuda:0, the worker's own GPU, or the CPU (`hpo.placement`)
        "precision": placement(train.precision, Devices.visible()).precision,
        "lora_r": train.lora_r,
        "lora_alpha": train.lora_alpha,
        "lora_dropout": train.lora_dropout,
        "lora_query": train.lora_query,
        "lora_key": train.lora_key,
        "lora_value": train.lora_value,
        "lora_projection": train.lora_projection,
        "lora_mlp": train.lora_mlp,
        "lora_head": train.lora_head,
        "data": {
            "class_path": "litgpt.data.JSON",
            "init_args": {
                "json_path": str(data_dir),
                "mask_prompt": train.mask_prompt,
                "prompt_style": prompt_style,
                "num_workers": 0,
                "seed": seed,
            },
        },
        "train": {
            "global_batch_size": train.micro_batch_size * train.gradient_accumulation,
            "micro_batch_size": train.micro_batch_size,
            "max_steps": train.max_steps,
            "epochs": 10**6,
            "lr_warmup_steps": train.lr_warmup_steps,
            "max_seq_length": train.max_seq_length,
            "save_interval": None,
            "log_interval": 1,
        },
        "eval": {
            "interval": train.eval_interval,
            "max_iters": 100,
            "max_new_tokens": 4,
            "initial_validation": False,
            "final_validation": True,
        },
        "optimizer": {
            "class_path": "torch.optim.AdamW",
            "init_args": {"lr": train.learning_rate, "weight_decay": train.weight_decay},
        },
        "logger_name": "csv",
        "seed": seed,
    }


def train_lora(
    train: TrainSection, checkpoint_dir: Path, data_dir: Path, out: TrialPaths, seed: int, stop: Stop | None = None
) -> dict:
    """Fine-tunes a LoRA adapter and writes the trial's training artefacts.

    Args:
        train: the trial's training settings (fixed settings with the trial's hyperparameters applied).
        checkpoint_dir: the base litgpt checkpoint.
        data_dir: folder with litgpt's `train.json` and `val.json`.
        out: the trial's paths; `adapter/`, `loss.csv` and `train.json` are written.
        seed: the trial's training seed.
        stop: asked after each validation before the last step (`hpo.trials.pruners.stop_for`); when it names who
            stops the trial, training ends there — on the learning-rate schedule of `train.max_steps`, so a trial
            stopped at step s is the same whether a pruner stopped it or its record did — and the adapter of that
            step is kept, with `state: pruned`.

    Returns:
        The content of `train.json`.
    """
    work = out.dir / "litgpt"
    for path in (work, out.adapter):
        if path.exists():
            shutil.rmtree(path)
    config = finetune_config(train, checkpoint_dir, data_dir, work, seed)
    start = time.perf_counter()
    stopped: dict[str, Any] = {}
    # litgpt's functions swapped (hpo.internals.litgpt)
    with lora_hooks(stop, stopped, eval_interval=train.eval_interval, max_steps=train.max_steps, base_state=base_state):
        run_litgpt("finetune_lora", config, out.dir / "finetune_lora.yaml")
    print(f"training loop: {time.perf_counter() - start:.1f} s", flush=True)  # in the trial's log only

    # The adapter keeps only the LoRA weights and the files needed to rebuild the model (merge_lora merges).
    final = work / "final"
    shutil.move(final, out.adapter)
    shutil.move(out.dir / "finetune_lora.yaml", out.adapter / "finetune_lora.yaml")
    rows = read_litgpt_log(work)
    shutil.rmtree(work)
    write_loss_curve(rows, out.loss_curve)

    train_losses = [r["loss"] for r in rows if r.get("loss") is not None]
    val_losses = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    tokens = max((int(r["tokens"] or 0) for r in rows), default=0)
    bad = next((r for r in rows if any(_nonfinite(r.get(k)) for k in ("loss", "val_loss"))), None)
    state, reason = "complete", None
    if bad:
        state, reason = "failed", f"diverged: non-finite loss at iteration {int(bad['iter'] or 0)}"
    elif stopped:
        state, reason = "pruned", f"pruned at step {stopped['step']} of {train.max_steps} by {stopped['by']}"
    result: dict[str, Any] = {
        "state": state,
        "reason": reason,
        "train_loss": _finite_or_none(train_losses[-1]) if train_losses else None,
        "val_loss": _finite_or_none(val_losses[-1]) if val_losses else None,
        "tokens": tokens,
        "steps": stopped.get("step", train.max_steps),
        "lora_params": lora_params(out.adapter / "lit_model.pth.lora"),
    }
    out.train_metrics.write_text(json.dumps(result, indent=2) + "\n")
    return result


def lora_params(weights: Path) -> int:
    """The number of LoRA weights an adapter holds (the size a multi-objective campaign may minimise)."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    return int(sum(t.numel() for t in state.get("model", state).values()))


def read_litgpt_log(work: Path) -> list[dict[str, float | None]]:
    """Rows of litgpt's CSV logger (iter, step, loss, val_loss, tokens), in logging order."""
    rows: list[dict[str, float | None]] = []
    for path in sorted(work.glob("logs/**/metrics.csv")):
        with path.open() as f:
            for raw in csv.DictReader(f):
                rows.append({k: _number(raw.get(k)) for k in ("iter", "step", "loss", "val_loss", "tokens")})
    return rows


def write_loss_curve(rows: list[dict[str, float | None]], path: Path) -> None:
    """The DVC plot: one row per logged iteration, with the validation loss where it was measured."""
    last_iter = 0.0
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iter", "train_loss", "val_loss"])
        for r in rows:
            it = r["iter"] if r["iter"] is not None else last_iter
            last_iter = it
            if r["loss"] is None and r["val_loss"] is None:
                continue
            writer.writerow([int(it), _cell(r["loss"]), _cell(r["val_loss"])])


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    text = text.removeprefix("tensor(").removesuffix(")")
    return float(text)


def _nonfinite(x: float | None) -> bool:
    return x is not None and not math.isfinite(x)


def _finite_or_none(x: float | None) -> float | None:
    return round(x, 6) if x is not None and math.isfinite(x) else None


def _cell(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def run(paths: CampaignPaths, trial_id: str, *, params: Params | None = None, pruners: Pruners | None = None) -> dict:
    """The stage for one recorded trial: what `python -m stages.train_lora` and a warm worker both run.

    Args:
        paths: the campaign's paths.
        trial_id: the recorded trial's id.
        params: the campaign's frozen params, as the caller parsed them (a worker parses them once per trial);
            None: read from the campaign's params file.
        pruners: the live pruners a warm worker hands a study trial (`hpo.trials.pruners`); None (`dvc repro`,
            `python -m stages.train_lora`): only a decision the trial's record holds stops it early.
    """
    params = params if params is not None else load_params(paths.params)
    trial = read_trial(paths, trial_id)
    pin_threads(trial.get("threads"))
    out = paths.trial(trial_id)
    out.dir.mkdir(parents=True, exist_ok=True)
    return train_lora(
        params.trial_train(trial["params"]),
        resolve_checkpoint(paths.base_model),
        paths.data,
        out,
        trial["seeds"]["train"],
        stop_for(params, trial_id, trial, pruners),
    )


def main() -> None:
    paths, trial_id = stage_args("Fine-tune one trial's LoRA adapter with litgpt.", trial=True)
    print(json.dumps(run(paths, trial_id)))


if __name__ == "__main__":
    main()
