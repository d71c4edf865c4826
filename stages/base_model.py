"""base_model: build the default tiny base model, check the user's litgpt checkpoint, or convert the user's
Hugging Face folder or GGUF file into one.

The default model is a 2-layer Llama-style litgpt `GPT` with a byte-level BPE tokenizer trained on the
project's corpus. It is given real competence by a short, deterministic pretraining run of `litgpt finetune_full`
on that corpus, so that LoRA adapts a model of the language rather than noise. With `model.checkpoint_dir` set,
the stage checks that a litgpt checkpoint folder is complete and records where it is and its hash (the folder
stays where it is); a Hugging Face folder or a `.gguf` file is converted by litgpt's converter into this stage's
output (`hpo.convert`), which DVC caches, with `conversion.json` naming the source, its sha256 and the converters'
versions.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from hpo.cache import pin_threads
from hpo.checkpoint import POINTER, CheckpointError, check_checkpoint
from hpo.config import ModelSection, TinyModel, load_params
from hpo.convert import convert, source_kind, workspace_path
from hpo.layout import stage_args
from hpo.litgpt_cli import run_litgpt
from hpo.record.lineage import hash_path
from hpo.textfile import read_text


def base_model(model: ModelSection, corpus: Path | None, out_dir: Path, seed: int) -> dict:
    """Builds the tiny model into `out_dir`, or records the user's checkpoint there.

    Args:
        model: the campaign's model section.
        corpus: text file (one sentence a line) to train the tokenizer and pretrain on; tiny model only.
        out_dir: the stage's output folder.
        seed: seed of the weights' initialisation and the pretraining data order (`model.tiny.seed`).

    Returns:
        A summary (checkpoint folder, and the pretraining validation loss for the tiny model).
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if model.checkpoint_dir is not None:
        if source_kind(model.checkpoint_dir) != "litgpt":  # a Hugging Face folder or GGUF file: converted here
            return convert(model.checkpoint_dir, out_dir, model.architecture)
        check_checkpoint(model.checkpoint_dir)
        record = {"checkpoint_dir": workspace_path(model.checkpoint_dir), "hash": hash_path(model.checkpoint_dir)}
        (out_dir / POINTER).write_text(json.dumps(record, indent=2) + "\n")
        return record
    if corpus is None or not corpus.is_file():
        raise CheckpointError(f"data.corpus: {corpus} not found; the tiny base model needs a text corpus")
    lines = [s for s in read_text(corpus).splitlines() if s.strip()]
    build_tiny(model.tiny, lines, out_dir, seed)
    val_loss = pretrain(model.tiny, lines, out_dir, seed)
    return {"checkpoint_dir": str(out_dir), "pretrain_val_loss": val_loss}


def build_tiny(tiny: TinyModel, lines: list[str], out_dir: Path, seed: int) -> None:
    """Trains the BPE tokenizer and writes a randomly initialised litgpt checkpoint."""
    import torch
    from litgpt import Config
    from litgpt.model import GPT
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=tiny.vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines + ["Text: Topic:"], trainer=trainer)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "add_bos_token": True,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")

    vocab = tokenizer.get_vocab_size()
    if tiny.architecture is not None:  # a published architecture at its real size, with the project's tokenizer
        config = Config.from_name(
            tiny.architecture, block_size=tiny.block_size, vocab_size=vocab, padded_vocab_size=vocab
        )
    else:
        config = _tiny_config(tiny, vocab)
    (out_dir / "model_config.yaml").write_text(yaml.safe_dump(asdict(config)))
    torch.manual_seed(seed)
    torch.save(GPT(config).state_dict(), out_dir / "lit_model.pth")


def _tiny_config(tiny: TinyModel, vocab: int) -> Any:
    """The default tiny LLaMA-style architecture (RMSNorm, LLaMA MLP, full rotary embeddings, no biases)."""
    from litgpt import Config

    return Config(
        name="tiny-llama-style",
        block_size=tiny.block_size,
        vocab_size=vocab,
        padded_vocab_size=vocab,
        n_layer=tiny.n_layer,
        n_head=tiny.n_head,
        n_query_groups=tiny.n_head,
        n_embd=tiny.n_embd,
        rotary_percentage=1.0,
        parallel_residual=False,
        bias=False,
        norm_class_name="RMSNorm",
        mlp_class_name="LLaMAMLP",
        intermediate_size=tiny.intermediate_size,
    )


def pretrain(tiny: TinyModel, lines: list[str], out_dir: Path, seed: int) -> float:
    """Pretrains the checkpoint in `out_dir` in place with `litgpt finetune_full`; returns the final val loss."""
    import torch

    rng = random.Random(seed)
    lines = list(lines)
    rng.shuffle(lines)
    n_val = max(1, len(lines) // 50)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        for name, part in (("val.json", lines[:n_val]), ("train.json", lines[n_val:])):
            rows = [{"instruction": "", "input": "", "output": s} for s in part]
            (work / "data" / name).write_text(json.dumps(rows))
        config = {
            "checkpoint_dir": str(out_dir.resolve()),
            "out_dir": str(work / "out"),
            "precision": "32-true",
            "data": {
                "class_path": "litgpt.data.JSON",
                "init_args": {
                    "json_path": str(work / "data"),
                    "mask_prompt": False,
                    "prompt_style": {"class_path": "litgpt.prompts.Default"},
                    "num_workers": 0,
                    "seed": seed,
                },
            },
            "train": {
                "global_batch_size": tiny.pretrain_batch_size,
                "micro_batch_size": tiny.pretrain_batch_size,
                "max_steps": tiny.pretrain_steps,
                "epochs": 1000,
                "lr_warmup_steps": max(1, tiny.pretrain_steps // 20),
                "max_seq_length": tiny.block_size,
                "save_interval": None,
                "log_interval": 10,
            },
            "eval": {"interval": 10**9, "max_iters": 20, "initial_validation": False, "final_validation": True},
            "optimizer": {
                "class_path": "torch.optim.AdamW",
                "init_args": {"lr": tiny.pretrain_learning_rate, "weight_decay": 0.0},
            },
            "logger_name": "csv",
            "seed": seed,
        }
        run_litgpt("finetune_full", config, work / "finetune_full.yaml")
        final = work / "out" / "final"
        state = torch.load(final / "lit_model.pth", map_location="cpu")
        torch.save(state.get("model", state), out_dir / "lit_model.pth")
        # Keep the run's settings with the model, without the temporary paths that would make its hash vary.
        record = yaml.safe_load((work / "finetune_full.yaml").read_text())
        record["out_dir"] = "<temporary>"
        record["data"]["init_args"]["json_path"] = "<corpus split: 98% train, 2% val>"
        record["checkpoint_dir"] = "<this folder, before pretraining>"
        (out_dir / "pretrain.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    return round(validation_loss(out_dir, lines[:n_val]), 6)


def validation_loss(checkpoint_dir: Path, lines: list[str]) -> float:
    """Mean next-token cross-entropy of the checkpoint on `lines` (each encoded with BOS and EOS)."""
    import torch
    import torch.nn.functional as F
    from litgpt import Config, Tokenizer
    from litgpt.model import GPT

    config = Config.from_file(checkpoint_dir / "model_config.yaml")
    tokenizer = Tokenizer(checkpoint_dir)
    model = GPT(config)
    model.load_state_dict(torch.load(checkpoint_dir / "lit_model.pth", map_location="cpu"))
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for line in lines:
            ids = tokenizer.encode(line, bos=True, eos=True)[: config.block_size + 1].long()
            logits = model(ids[None, :-1])
            total += F.cross_entropy(logits[0], ids[1:], reduction="sum").item()
            count += len(ids) - 1
    return total / max(count, 1)


def main() -> None:
    paths, _ = stage_args("Build the tiny base model or check a litgpt checkpoint.", trial=False)
    params = load_params(paths.params)
    pin_threads(params.campaign.cpu_threads)  # declared: the same bytes whoever starts it; else torch's default
    summary = base_model(params.model, params.data.corpus, paths.base_model, params.model.tiny.seed)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
