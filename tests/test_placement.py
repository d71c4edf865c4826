"""A trial's device, precision and evaluation dtype (`hpo.placement`), decided for CPUs and for GPUs described
by `Devices` (no GPU here: the CUDA branches are checked as decisions, not run)."""

from __future__ import annotations

import pytest

from hpo.placement import Devices, Placement, placement

CPU = Devices()
AMPERE = Devices(cuda=1, bf16=True)  # e.g. A100: bfloat16
VOLTA = Devices(cuda=2, bf16=False)  # e.g. V100 or T4: no bfloat16; two visible, the trial takes the first


@pytest.mark.parametrize(
    ("precision", "devices", "expected"),
    [
        ("auto", CPU, Placement("cpu", "32-true", "float32")),
        ("auto", AMPERE, Placement("cuda:0", "bf16-true", "bfloat16")),
        ("auto", VOLTA, Placement("cuda:0", "16-mixed", "float32")),
        ("32-true", CPU, Placement("cpu", "32-true", "float32")),
        ("32-true", AMPERE, Placement("cuda:0", "32-true", "float32")),
        ("bf16-true", CPU, Placement("cpu", "bf16-true", "float32")),  # a CPU evaluates in float32
        ("bf16-mixed", AMPERE, Placement("cuda:0", "bf16-mixed", "float32")),  # mixed: float32 weights
        ("16-true", VOLTA, Placement("cuda:0", "16-true", "float16")),
    ],
)
def test_placement_decisions(precision: str, devices: Devices, expected: Placement) -> None:
    placed = placement(precision, devices)
    assert placed == expected
    assert placed.gpus == (1 if devices.cuda else 0), "one device per trial"


def test_bfloat16_on_a_gpu_without_it_is_refused() -> None:
    with pytest.raises(ValueError, match=r"train.precision: 'bf16-true' on a GPU without bfloat16 support"):
        placement("bf16-true", VOLTA)


def test_this_machine_is_a_cpu_and_the_lm_is_placed_there() -> None:
    """On this CPU-only machine: nothing visible, and the default precision evaluates in float32 (the recorded
    `device` and `dtype` of every metrics.json here)."""
    assert Devices.visible() == CPU
    assert placement("32-true", Devices.visible()) == Placement("cpu", "32-true", "float32")
