"""A user's model in (hpo.convert): which litgpt architecture a Hugging Face configuration is, and one line naming
`model.checkpoint_dir` for every input that cannot be converted — before anything is written. The conversion
itself, of the real SmolLM2-135M-Instruct GGUF, is tested in tests/test_real_model.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hpo.checkpoint import CheckpointError
from hpo.convert import check_source, litgpt_name, source_kind

# SmolLM2-135M-Instruct's configuration as transformers reads it from the GGUF file (rms_norm_eps in float32)
SMOLLM2 = {
    "model_type": "llama",
    "num_hidden_layers": 30,
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "vocab_size": 49152,
    "rope_theta": 100000.0,
    "rms_norm_eps": 9.999999747378752e-06,
}


def test_architecture_inferred_from_the_configuration() -> None:
    # SmolLM2-135M and its instruct variant have one architecture: the file or folder name picks the name
    assert litgpt_name(SMOLLM2, hint="SmolLM2-135M-Instruct.Q4_1") == "SmolLM2-135M-Instruct"
    assert litgpt_name(SMOLLM2, hint="my-model") in ("SmolLM2-135M", "SmolLM2-135M-Instruct")
    assert litgpt_name(SMOLLM2, "SmolLM2-135M") == "SmolLM2-135M"


def test_architecture_that_does_not_fit() -> None:
    with pytest.raises(CheckpointError, match=r"model.architecture: 'pythia-160m' does not fit"):
        litgpt_name(SMOLLM2, "pythia-160m")
    with pytest.raises(CheckpointError, match=r"model.architecture: got 'nope'; expected a litgpt configuration"):
        litgpt_name(SMOLLM2, "nope")
    with pytest.raises(CheckpointError, match=r"model.checkpoint_dir: no litgpt configuration has this model's"):
        litgpt_name({**SMOLLM2, "num_hidden_layers": 7})
    # a different rotary base is a different model, even at the same sizes
    with pytest.raises(CheckpointError, match="no litgpt configuration"):
        litgpt_name({**SMOLLM2, "rope_theta": 10000.0})


def _gguf(path: Path, architecture: str = "llama", raw_dtype: object = None) -> Path:
    """A small GGUF file written with gguf's own writer: one F32 tensor, or raw bytes of another type."""
    from gguf import GGMLQuantizationType, GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    if raw_dtype is None:
        writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    else:  # one block of Q8_1: 40 bytes (gguf.GGML_QUANT_SIZES)
        assert raw_dtype == GGMLQuantizationType.Q8_1
        writer.add_tensor("blk.0.attn_q.weight", np.zeros((1, 40), dtype=np.uint8), raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_what_model_checkpoint_dir_names(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    lit = tmp_path / "lit"
    lit.mkdir()
    (lit / "model_config.yaml").write_text("{}")
    assert source_kind(hf) == "hf" and source_kind(lit) == "litgpt"
    assert source_kind(_gguf(tmp_path / "m.gguf")) == "gguf"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="holds neither lit_model.pth"):
        source_kind(empty)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file but not a .gguf"):
        source_kind(tmp_path / "weights.bin")
    with pytest.raises(CheckpointError, match="does not exist"):
        source_kind(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: (d / "config.json").write_text('{"model_type": "llama"}'), "has a config.json but no weights"),
        (lambda d: (d / "bad.gguf").write_bytes(b"GGML" + bytes(64)), "does not start with the GGUF magic bytes"),
        (lambda d: (d / "bad.gguf").write_bytes(b"GGUF" + bytes(7)), "is not a readable GGUF file"),
        (lambda d: _gguf(d / "bad.gguf", architecture="bogus"), "GGUF of architecture 'bogus', which transformers"),
        (lambda d: _gguf(d / "bad.gguf", raw_dtype=_q8_1()), "quantised as Q8_1, which gguf cannot dequantise"),
    ],
)
def test_inputs_that_cannot_be_converted(tmp_path: Path, make: object, expected: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    make(folder)  # type: ignore[operator]
    source = folder / "bad.gguf" if (folder / "bad.gguf").exists() else folder
    with pytest.raises(CheckpointError) as err:
        check_source(source)
    assert str(err.value).startswith(f"model.checkpoint_dir: {source}") and expected in str(err.value)
    assert "\n" not in str(err.value)


def _q8_1() -> object:
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType.Q8_1


def test_cli_refuses_a_corrupt_gguf_and_writes_nothing(workspace: Path) -> None:
    (workspace / "broken.gguf").write_bytes(b"GGUF" + bytes(7))
    raw = yaml.safe_load((workspace / "params.yaml").read_text())
    raw["model"] = {"checkpoint_dir": "broken.gguf"}
    (workspace / "bad.yaml").write_text(yaml.safe_dump(raw))
    before = sorted(p.relative_to(workspace) for p in (workspace / "campaigns").rglob("*"))
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--params", "bad.yaml"],
        cwd=workspace,
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_HOME": str(workspace / ".prefect")},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: model.checkpoint_dir: broken.gguf is not a readable GGUF file (")
    assert done.stderr.count("\n") == 1
    assert sorted(p.relative_to(workspace) for p in (workspace / "campaigns").rglob("*")) == before
