"""Export a litgpt checkpoint (a trial's merged one) as a complete Hugging Face transformers folder.

`export_hf` writes `config.json`, `model.safetensors`, `generation_config.json` and the tokenizer files, which
`AutoModelForCausalLM.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)` open with no network.
The weights are renamed by litgpt's own converter (`litgpt.scripts.convert_lit_checkpoint`'s `copy_weights_*`,
chosen as its `convert_lit_checkpoint` chooses them). The configuration is the checkpoint's own `config.json` where
it has one (a model converted from a Hugging Face folder keeps it), else a `LlamaConfig` derived from litgpt's
`model_config.yaml` for a LLaMA-style architecture (the project's tiny model); either way `tie_word_embeddings` and
`dtype` are those of the weights being exported.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
HF_FILES = ("config.json", "generation_config.json", *TOKENIZER_FILES)

# What litgpt's Config must say for its GPT to compute what transformers' LlamaForCausalLM computes.
LLAMA_FEATURES: dict[str, Any] = {
    "norm_class_name": "RMSNorm",
    "mlp_class_name": "LLaMAMLP",
    "parallel_residual": False,
    "shared_attention_norm": False,
    "bias": False,
    "attn_bias": False,
    "lm_head_bias": False,
    "norm_qk": False,
    "norm_1": True,
    "norm_2": True,
    "post_attention_norm": False,
    "post_mlp_norm": False,
    "scale_embeddings": False,
    "rotary_percentage": 1.0,
    "rope_condense_ratio": 1,
    "rope_interleave": False,
    "rope_local_base_freq": None,
    "rope_indices": None,
    "sliding_window_size": None,
    "attention_logit_softcapping": None,
    "final_logit_softcapping": None,
    "n_expert": 0,
    "latent_attention": None,
}
LLAMA3_ROPE = {"factor", "low_freq_factor", "high_freq_factor", "original_max_seq_len"}


class ExportError(ValueError):
    """A checkpoint that cannot be exported as a Hugging Face folder; the message says why and what is supported."""


def export_hf(checkpoint_dir: Path, out_dir: Path, base_dir: Path | None = None) -> Path:
    """Writes the Hugging Face transformers folder of the litgpt checkpoint in `checkpoint_dir` into `out_dir`.

    Args:
        checkpoint_dir: a litgpt checkpoint folder without LoRA weights (`lit_model.pth`, `model_config.yaml`,
            tokenizer files; `config.json` and `generation_config.json` where it came from a Hugging Face model).
        out_dir: the folder to write (created; files of the same names are replaced).
        base_dir: where to take the Hugging Face files (`config.json`, tokenizer and generation files) that
            `checkpoint_dir` lacks: the base checkpoint a merged trial was trained on (litgpt's finetuning copies
            only some of them into an adapter folder).

    Returns:
        `out_dir`.

    Raises:
        ExportError: an architecture with no `config.json` that is not LLaMA-style, or weights that do not fit
            the configuration.
    """
    import torch
    from litgpt import Config
    from litgpt.scripts.convert_lit_checkpoint import check_conversion_supported

    sources = _sources(checkpoint_dir, base_dir)
    lit_config = Config.from_file(checkpoint_dir / "model_config.yaml")
    lit = torch.load(checkpoint_dir / "lit_model.pth", map_location="cpu", mmap=True, weights_only=True)
    lit = lit.get("model", lit)
    check_conversion_supported(lit)
    embedding = lit["transformer.wte.weight"]
    tied = "lm_head.weight" not in lit or torch.equal(lit["lm_head.weight"], embedding)
    special = _special_ids(checkpoint_dir, sources)

    if "config.json" in sources:
        config = _hf_config_from_file(sources["config.json"])
    else:
        config = _llama_config(lit_config, special)
    config.tie_word_embeddings = tied
    config.dtype = embedding.dtype
    state: dict[str, Any] = {}
    with torch.no_grad():
        _copy_function(lit_config)(state, lit)
        model = _load(config, state)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in (*TOKENIZER_FILES, "generation_config.json"):  # the checkpoint's own generation_config.json
        if name in sources:  # replaces the one save_pretrained derived from the configuration
            shutil.copy(sources[name], out_dir / name)
    if "generation_config.json" not in sources:
        from transformers import GenerationConfig

        GenerationConfig(
            bos_token_id=special["bos"], eos_token_id=special["eos"], pad_token_id=special["pad"]
        ).save_pretrained(out_dir)
    _add_bos_like_litgpt(checkpoint_dir, out_dir)
    return out_dir


def _sources(checkpoint_dir: Path, base_dir: Path | None) -> dict[str, Path]:
    """Each Hugging Face file the export copies or starts from: the checkpoint's own, else the base's."""
    found = {}
    for name in HF_FILES:
        for folder in (checkpoint_dir, base_dir):
            if folder is not None and (folder / name).is_file():
                found[name] = folder / name
                break
    return found


def _special_ids(checkpoint_dir: Path, sources: dict[str, Path]) -> dict[str, int | None]:
    """BOS and EOS ids as litgpt's tokenizer reads them (tokenizer_config.json, then generation_config.json), and
    the padding token's id where tokenizer_config.json names one."""
    from litgpt import Tokenizer

    tokenizer = Tokenizer(checkpoint_dir)
    pad = None
    if "tokenizer_config.json" in sources:
        token = json.loads(sources["tokenizer_config.json"].read_text()).get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str) and tokenizer.backend == "huggingface":
            pad = tokenizer.processor.token_to_id(token)
    return {"bos": tokenizer.bos_id, "eos": tokenizer.eos_id, "pad": pad}


def _hf_config_from_file(config_file: Path) -> Any:
    """The transformers configuration a checkpoint converted from a Hugging Face model kept (`config.json`)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(config_file.parent, local_files_only=True)
    except (ValueError, KeyError) as err:
        raise ExportError(f"{config_file}: not a configuration this transformers version knows ({err})") from None


def _llama_config(lit: Any, special: dict[str, int | None]) -> Any:
    """The `LlamaConfig` of a LLaMA-style litgpt Config (the project's tiny model, or a published LLaMA-style
    architecture built at its real size)."""
    from litgpt.scripts.convert_lit_checkpoint import copy_weights_llama
    from transformers import LlamaConfig

    differs = {k: getattr(lit, k) for k, v in LLAMA_FEATURES.items() if getattr(lit, k) != v}
    if lit.attention_scores_scalar not in (None, lit.head_size):
        differs["attention_scores_scalar"] = lit.attention_scores_scalar
    rope_scaling = None
    if lit.rope_adjustments is not None:
        if set(lit.rope_adjustments) != LLAMA3_ROPE:
            differs["rope_adjustments"] = lit.rope_adjustments
        else:
            rope = lit.rope_adjustments
            rope_scaling = {
                "rope_type": "llama3",
                "factor": float(rope["factor"]),
                "low_freq_factor": float(rope["low_freq_factor"]),
                "high_freq_factor": float(rope["high_freq_factor"]),
                "original_max_position_embeddings": int(rope["original_max_seq_len"]),
            }
    if differs or _copy_function(lit).func is not copy_weights_llama:
        what = ", ".join(f"{k}={v!r}" for k, v in differs.items()) or "litgpt converts it as another family"
        raise ExportError(
            f"cannot export architecture {lit.name!r} as a Hugging Face model: it is not LLaMA-style ({what}) and "
            "its checkpoint has no config.json; supported: a LLaMA-style litgpt model (RMSNorm, LLaMAMLP, full "
            "rotary embeddings, no biases, sequential residual; the project's tiny model), or any checkpoint "
            "converted from a Hugging Face model (which keeps its config.json)"
        )
    return LlamaConfig(
        vocab_size=lit.padded_vocab_size,
        hidden_size=lit.n_embd,
        intermediate_size=lit.intermediate_size,
        num_hidden_layers=lit.n_layer,
        num_attention_heads=lit.n_head,
        num_key_value_heads=lit.n_query_groups,
        head_dim=lit.head_size,
        hidden_act="silu",
        max_position_embeddings=lit.block_size,
        rms_norm_eps=lit.norm_eps,
        rope_theta=float(lit.rope_base),
        rope_scaling=rope_scaling,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=special["bos"],
        eos_token_id=special["eos"],
        pad_token_id=special["pad"],
    )


def _copy_function(config: Any) -> partial[None]:
    """litgpt's weight renaming for `config`, chosen as `convert_lit_checkpoint` chooses it, in memory:
    `fn(hf_state, lit_state)`. The LM head is always copied (transformers ties it again where the config says so)."""
    from litgpt.scripts import convert_lit_checkpoint as convert

    name = config.name
    fn: Callable[..., None]
    if "falcon" in name:
        fn = convert.copy_weights_falcon
    elif name.startswith("Gemma-2"):
        fn = convert.copy_weights_gemma_2
    elif name.startswith("Gemma-3"):
        fn = convert.copy_weights_gemma_3
    elif name.lower().startswith("phi"):
        fn = convert.copy_weights_phi
    elif name.lower().startswith(("qwen2.5", "qwq")):
        fn = convert.copy_weights_qwen_2_5
    elif name.lower().startswith("olmo-2-"):
        fn = convert.copy_weights_olmo2
    elif name.lower().startswith("qwen3"):
        fn = convert.copy_weights_qwen_3
    elif config.mlp_class_name in ("LLaMAMLP", "GemmaMLP", "LLaMAMoE"):
        fn = convert.copy_weights_llama
    else:
        fn = convert.copy_weights_gpt_neox
    if fn in (convert.copy_weights_falcon, convert.copy_weights_gpt_neox, convert.copy_weights_phi):
        return partial(fn, config)
    return partial(fn, config, untie_weights=False)


def _load(config: Any, state: dict[str, Any]) -> Any:
    """The transformers model of `config` holding `state` (built without initialising weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    # a tensor split from a fused one (litgpt's qkv) shares its storage: safetensors wants its own
    state = {
        k: v.clone() if v.untyped_storage().nbytes() != v.numel() * v.element_size() else v for k, v in state.items()
    }
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=config.dtype)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise ExportError(f"the weights do not fit a {type(model).__name__} of this configuration: {err}") from None
    if config.tie_word_embeddings:
        model.tie_weights()
    return model


def _add_bos_like_litgpt(checkpoint_dir: Path, out_dir: Path) -> None:
    """Makes the exported tokenizer put BOS first where litgpt's does (what the model was trained and scored
    with): a `PreTrainedTokenizerFast` ignores tokenizer_config.json's `add_bos_token`, which litgpt follows, so
    the tokenizer.json of such a checkpoint gets a post-processor that adds it."""
    from litgpt import Tokenizer
    from tokenizers import Tokenizer as Fast
    from tokenizers import processors
    from transformers import AutoTokenizer

    lit = Tokenizer(checkpoint_dir)
    if not lit.use_bos or lit.bos_id is None or lit.backend != "huggingface":
        return
    hf = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    if hf("a")["input_ids"][:1] == [lit.bos_id]:
        return
    fast = Fast.from_file(str(out_dir / "tokenizer.json"))
    bos = fast.id_to_token(lit.bos_id)
    add_bos = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, lit.bos_id)]
    )
    fast.post_processor = (
        add_bos if fast.post_processor is None else processors.Sequence([fast.post_processor, add_bos])
    )
    fast.save(str(out_dir / "tokenizer.json"))


def hf_loading_instructions(out_dir: Path, checkpoint_dir: Path) -> str:
    """What `export_hf` wrote into `out_dir` from `checkpoint_dir`, and how to load it with transformers."""
    written = ", ".join(sorted(p.name for p in out_dir.iterdir() if p.is_file()))
    return f"""Hugging Face transformers folder: {out_dir}
  {written}
  (converted from the merged litgpt checkpoint {checkpoint_dir})

transformers (no network needed):
  python: from transformers import AutoModelForCausalLM, AutoTokenizer
          model = AutoModelForCausalLM.from_pretrained("{out_dir}")
          tokenizer = AutoTokenizer.from_pretrained("{out_dir}")"""
