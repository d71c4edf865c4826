"""`hpo.export.export_hf` and `campaign export --format hf`: a litgpt checkpoint (a merged trial of the tiny model)
becomes a Hugging Face folder that transformers opens offline, with no missing or unexpected weights, the same
logits as litgpt's `GPT` and a tokenizer that encodes as litgpt's does (BOS included)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors import safe_open
from typer.testing import CliRunner

from flows.cli import app
from hpo.config import TinyModel
from hpo.export import ExportError, export_hf
from stages.base_model import build_tiny
from stages.merge_lora import merge_lora

from .helpers import ROOT

TINY = TinyModel(n_layer=2, n_head=2, n_embd=32, intermediate_size=64, vocab_size=320)
TEXTS = ["Text: the market rose on strong earnings. Topic:", "Text: rain", "Topic: sport and the final"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
LORA = {
    "lora_r": 4,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "lora_query": True,
    "lora_key": True,
    "lora_value": True,
    "lora_projection": True,
    "lora_mlp": True,
    "lora_head": True,
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's architecture and tokenizer, randomly initialised (`build_tiny`, no pretraining)."""
    out = tmp_path_factory.mktemp("base")
    lines = (ROOT / "data" / "tinytopic_corpus.txt").read_text().splitlines()[:400]
    build_tiny(TINY, lines, out, 0)
    return out


@pytest.fixture(scope="module")
def merged(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trial's merged checkpoint, as the merge stage writes it: an adapter folder laid out as litgpt's LoRA
    finetuning leaves it (LoRA on every layer and the head, random non-zero weights), merged by `merge_lora`."""
    from litgpt.lora import GPT, Config, lora_filter
    from litgpt.utils import copy_config_files

    root = tmp_path_factory.mktemp("trial")
    adapter = root / "adapter"
    adapter.mkdir()
    torch.manual_seed(1)
    model = GPT(Config.from_file(base / "model_config.yaml", **LORA))
    lora = {k: torch.randn_like(v) * 0.05 for k, v in model.state_dict().items() if lora_filter(k, v)}
    torch.save({"model": lora}, adapter / "lit_model.pth.lora")
    copy_config_files(base, adapter)
    hparams = {**LORA, "checkpoint_dir": str(base), "precision": "32-true"}
    (adapter / "hyperparameters.yaml").write_text(yaml.safe_dump(hparams))
    merge_lora(adapter, base, root / "merged")
    return root / "merged"


def lit_logits(checkpoint_dir: Path, ids: torch.Tensor) -> torch.Tensor:
    from litgpt import Config
    from litgpt.model import GPT

    model = GPT(Config.from_file(checkpoint_dir / "model_config.yaml"))
    model.load_state_dict(torch.load(checkpoint_dir / "lit_model.pth", weights_only=True))
    model.eval()
    with torch.no_grad():
        return model(ids)


def load_hf(folder: Path, **kwargs: Any) -> Any:
    """The exported model, loaded offline; fails on any missing, unexpected or mismatched weight."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, output_loading_info=True, **kwargs
    )
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    return model.eval()


def assert_same_logits(checkpoint_dir: Path, folder: Path, **kwargs: Any) -> None:
    """Logits of the exported model equal litgpt's on a few sequences (random ids, whole context)."""
    model = load_hf(folder, **kwargs)
    torch.manual_seed(0)
    vocab = model.config.vocab_size
    for ids in (torch.randint(vocab, (1, 7)), torch.randint(vocab, (2, 64))):
        with torch.no_grad():
            hf = model(ids).logits
        torch.testing.assert_close(hf, lit_logits(checkpoint_dir, ids), atol=1e-4, rtol=0)


def lit_checkpoint(base: Path, out: Path, tie: bool, dtype: torch.dtype = torch.float32, **config: Any) -> Path:
    """A randomly initialised litgpt checkpoint of the tiny model's architecture changed by `config`, with the
    tiny model's tokenizer files; the LM head the embedding itself where `tie`."""
    from litgpt import Config
    from litgpt.model import GPT

    out.mkdir()
    for name in TOKENIZER_FILES:
        shutil.copy(base / name, out / name)
    raw = {**yaml.safe_load((base / "model_config.yaml").read_text()), **config}
    (out / "model_config.yaml").write_text(yaml.safe_dump(raw))
    torch.manual_seed(2)
    state = GPT(Config(**raw)).state_dict()
    if tie:
        state["lm_head.weight"] = state["transformer.wte.weight"].clone()
    torch.save({k: v.to(dtype) for k, v in state.items()}, out / "lit_model.pth")
    return out


def test_a_merged_trial_exports_to_a_folder_transformers_opens_offline(
    base: Path, merged: Path, tmp_path: Path
) -> None:
    """The merged tiny model: every file, the weights under their transformers names (logits equal litgpt's),
    an untied head (LoRA changed it), its dtype, and a tokenizer that encodes as litgpt's, BOS first."""
    from litgpt import Tokenizer
    from transformers import AutoTokenizer, GenerationConfig

    base_head = torch.load(base / "lit_model.pth", weights_only=True)["lm_head.weight"]
    assert not torch.equal(torch.load(merged / "lit_model.pth", weights_only=True)["lm_head.weight"], base_head)
    out = export_hf(merged, tmp_path / "hf", base_dir=base)
    names = {p.name for p in out.iterdir()}
    assert names == {"config.json", "model.safetensors", "generation_config.json", *TOKENIZER_FILES}
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["dtype"] == "float32"
    assert config["tie_word_embeddings"] is False
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (32, 2, 320)
    assert_same_logits(merged, out)

    lit = Tokenizer(merged)
    hf = AutoTokenizer.from_pretrained(out, local_files_only=True)
    for text in TEXTS:
        ids = lit.encode(text).tolist()
        assert ids[0] == lit.bos_id == hf.bos_token_id and hf(text)["input_ids"] == ids
        assert hf.decode(ids, skip_special_tokens=True) == text
    generation = GenerationConfig.from_pretrained(out, local_files_only=True)
    assert (generation.bos_token_id, generation.eos_token_id) == (lit.bos_id, lit.eos_id)


def test_a_tied_head_grouped_queries_llama3_rope_and_bfloat16(base: Path, tmp_path: Path) -> None:
    """A head equal to the embedding is exported tied (one tensor in the file); grouped-query attention and Llama
    3 RoPE scaling map to their transformers settings; bfloat16 weights stay bfloat16."""
    rope = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_seq_len": 16}
    ckpt = lit_checkpoint(
        base, tmp_path / "lit", tie=True, dtype=torch.bfloat16, n_head=4, n_query_groups=1, rope_adjustments=rope
    )
    out = export_hf(ckpt, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and config["dtype"] == "bfloat16"
    assert config["num_key_value_heads"] == 1 and config["rope_scaling"]["rope_type"] == "llama3"
    with safe_open(out / "model.safetensors", "pt") as weights:
        stored = set(weights.keys())
    assert "lm_head.weight" not in stored and "model.embed_tokens.weight" in stored
    assert load_hf(out, dtype="auto").dtype == torch.bfloat16
    assert_same_logits(ckpt, out, dtype=torch.float32)  # litgpt's GPT loads the bfloat16 weights as float32 too


def test_a_checkpoint_converted_from_hugging_face_keeps_its_config_and_files(base: Path, tmp_path: Path) -> None:
    """A checkpoint with its original config.json: the export starts from it (its own settings kept) but says what
    the weights are (untied, float32), and copies the tokenizer and generation files it has."""
    ckpt = lit_checkpoint(base, tmp_path / "lit", tie=False)
    export_hf(ckpt, tmp_path / "first")
    original = json.loads((tmp_path / "first/config.json").read_text())
    original.update(tie_word_embeddings=True, torch_dtype="bfloat16", initializer_range=0.0123)
    original.pop("dtype")
    (ckpt / "config.json").write_text(json.dumps(original))
    extra = {
        "special_tokens_map.json": json.dumps({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}),
        "chat_template.jinja": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
        "generation_config.json": json.dumps({"bos_token_id": 1, "eos_token_id": 2, "max_new_tokens": 7}),
    }
    for name, text in extra.items():
        (ckpt / name).write_text(text)
    out = export_hf(ckpt, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["initializer_range"] == 0.0123
    assert config["tie_word_embeddings"] is False and config["dtype"] == "float32"
    for name, text in extra.items():
        assert (out / name).read_text() == text
    assert_same_logits(ckpt, out)


def test_an_architecture_without_a_config_that_is_not_llama_style_is_refused(base: Path, tmp_path: Path) -> None:
    ckpt = lit_checkpoint(
        base, tmp_path / "lit", tie=False, name="neox-style", norm_class_name="LayerNorm", mlp_class_name="GptNeoxMLP"
    )
    with pytest.raises(ExportError, match="architecture 'neox-style'.*supported: a LLaMA-style litgpt model"):
        export_hf(ckpt, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "hf"], "error: campaign export --format hf needs --to DIR"),
        (["--format", "gguf", "--to", "out"], "error: campaign export --format: 'gguf' is not a format"),
    ],
)
def test_export_refuses_a_bad_format_request_before_writing_anything(
    args: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["export", "default", "t000", *args])
    assert done.exit_code == 2 and done.stderr.startswith(expected), done.output
    assert len(done.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())
