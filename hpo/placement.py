"""Where a trial computes and in what precision: the one place that decides device, training precision, the
evaluated model's dtype and batch sizes, from what the process sees.

A trial uses one device. On a GPU worker it is `cuda:0`, the first GPU in the process's `CUDA_VISIBLE_DEVICES`:
dask-cuda starts one worker per GPU and lists that worker's own GPU first, so each trial computes on its
worker's GPU and nowhere else (a trial never reads CUDA_VISIBLE_DEVICES itself; torch numbers the visible GPUs
from 0). Without a GPU it is the CPU.

The decisions (`placement`), tested on the CPU with the devices described (`Devices`):
- `train.precision: auto` trains in `bf16-true` on a GPU that supports bfloat16 (Ampere and later), in
  `16-mixed` on one that does not (V100, T4), and in `32-true` on the CPU; any other value is litgpt's (Lightning's)
  precision as given, except bfloat16 on a GPU without it, which is refused naming the key.
- The model a trial evaluates is in the training precision's dtype on a GPU (`bf16-true`: bfloat16, `16-true`:
  float16; `32-true` and the mixed precisions, whose weights are float32: float32), and in float32 on the CPU.
- Batch sizes are the declared ones on every device (`train.micro_batch_size`, `eval.batch_size`,
  `generate.batch_size`): a score must not depend on a GPU's memory, so lm-eval's `auto` batch size is never used
  (it changes which requests are padded together, and so the order of the sums).
- The base weights a warm worker caches stay in CPU memory (`hpo.cache.base_state`); only the evaluated
  model is moved to the GPU, so the GPU holds one copy of the model.

GPU-only: every branch with `devices.cuda > 0` is exercised here only through `Devices` values, never on a GPU
(this project's CI has none).
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"


@dataclass(frozen=True)
class Devices:
    """What the process sees: the number of visible GPUs and whether the first supports bfloat16."""

    cuda: int = 0
    bf16: bool = False

    @classmethod
    def visible(cls) -> Devices:
        """This process's devices, from torch (which reads CUDA_VISIBLE_DEVICES)."""
        import torch

        if not torch.cuda.is_available() or not torch.cuda.device_count():
            return cls()
        return cls(cuda=torch.cuda.device_count(), bf16=bool(torch.cuda.is_bf16_supported()))  # GPU-only


@dataclass(frozen=True)
class Placement:
    """A trial's device, training precision and evaluation dtype."""

    device: str  # "cuda:0" or "cpu"
    precision: str  # handed to litgpt's finetune_lora
    eval_dtype: str  # torch dtype name of the evaluated model

    @property
    def gpus(self) -> int:
        """The GPUs the trial computes on (what a GPU-hours budget counts)."""
        return 1 if self.device.startswith("cuda") else 0


def placement(precision: str, devices: Devices) -> Placement:
    """A trial's placement on `devices` (batch sizes are not decided here: the declared ones hold everywhere).

    Args:
        precision: `train.precision` (`auto`, or litgpt's: `32-true`, `bf16-true`, `16-mixed`, …).
        devices: what the process sees (`Devices.visible()`).

    Raises:
        ValueError: bfloat16 asked for on a GPU without it, naming `train.precision`.
    """
    gpu = devices.cuda > 0
    if precision == AUTO:
        precision = ("bf16-true" if devices.bf16 else "16-mixed") if gpu else "32-true"
    elif gpu and precision.startswith("bf16") and not devices.bf16:  # GPU-only
        raise ValueError(
            f"train.precision: {precision!r} on a GPU without bfloat16 support; expected 16-mixed, 32-true or auto"
        )
    eval_dtype = "float32"
    if gpu and precision.endswith("-true"):
        eval_dtype = {"bf16": "bfloat16", "16": "float16"}.get(precision.removesuffix("-true"), "float32")
    return Placement(device="cuda:0" if gpu else "cpu", precision=precision, eval_dtype=eval_dtype)
