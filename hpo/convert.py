"""A user's model in: a Hugging Face folder or a GGUF file, converted to a litgpt checkpoint by litgpt's converter.

`model.checkpoint_dir` names one of three things (`source_kind`):

- a litgpt checkpoint folder (`lit_model.pth`, `model_config.yaml`, tokenizer files): used as it is;
- a Hugging Face model folder (`config.json` and `*.safetensors` / `*.bin` weights, tokenizer files);
- a `.gguf` file (llama.cpp's format, often quantised): transformers' GGUF loader dequantises it to float32 and
  builds its tokenizer, then it is saved as a Hugging Face folder.

A Hugging Face folder (given, or made from the GGUF in a temporary folder) goes through litgpt's
`convert_hf_checkpoint` under the litgpt configuration its `config.json` describes (`litgpt_name`: the one whose
layers, widths, heads, vocabulary, MLP, norm and rotary base match, or `model.architecture` when given). The
converted checkpoint keeps the source's `config.json`, `generation_config.json` and tokenizer files beside
`lit_model.pth`, so a tuned model can leave as a Hugging Face folder again (`hpo.export`). `conversion.json`
records the source (where, its sha256), the litgpt name and the converters' versions; the same source and
versions give the same bytes.

The user's folder or file is only read: litgpt's converter writes into the folder it converts, so a Hugging Face
folder is first mirrored into a temporary folder (weights linked, not copied).

Every check a campaign can make before it starts is in `check_source` (cheap: metadata only), so bad input stops
`campaign run` with one line naming `model.checkpoint_dir` before anything is written.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any, Literal

from hpo.checkpoint import CheckpointError, check_checkpoint
from hpo.record.lineage import hash_path
from hpo.tasks import sha256

SourceKind = Literal["litgpt", "hf", "gguf"]
KEY = "model.checkpoint_dir"
CONVERSION = "conversion.json"
# Files of a Hugging Face folder the converted checkpoint keeps (besides litgpt's own): what transformers needs to
# open the model and its tokenizer again, without the weights.
HF_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def source_kind(path: Path) -> SourceKind:
    """What `model.checkpoint_dir` names: a litgpt checkpoint, a Hugging Face folder or a GGUF file.

    Raises:
        CheckpointError: naming the key and path when it is none of the three.
    """
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return "gguf"
        raise CheckpointError(f"{KEY}: {path} is a file but not a .gguf; expected a .gguf file or a model folder")
    if not path.is_dir():
        raise CheckpointError(
            f"{KEY}: {path} does not exist; expected a litgpt checkpoint, a Hugging Face folder or a .gguf file"
        )
    if (path / "lit_model.pth").is_file() or (path / "model_config.yaml").is_file():
        return "litgpt"
    if (path / "config.json").is_file():
        return "hf"
    raise CheckpointError(
        f"{KEY}: {path} holds neither lit_model.pth + model_config.yaml (litgpt) nor config.json (Hugging Face); "
        "expected a litgpt checkpoint, a Hugging Face model folder or a .gguf file"
    )


def check_source(path: Path, architecture: str | None = None) -> tuple[SourceKind, Any]:
    """Checks that `path` can be converted (or used), reading metadata only; returns its kind and, for a Hugging
    Face folder or GGUF file, the litgpt `Config` it converts to (the block size and width a campaign's settings
    must fit).

    Raises:
        CheckpointError: one line naming the key, the path and what was expected: a folder without weights or
            tokenizer, a corrupt GGUF, a GGUF whose quantisation cannot be dequantised, an architecture litgpt or
            transformers does not know.
    """
    from litgpt import Config

    kind = source_kind(path)
    if kind == "litgpt":  # its limits are read from its model_config.yaml (hpo.validate.check_checkpoint_limits)
        check_checkpoint(path)
        return kind, None
    if kind == "hf":
        if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
            raise CheckpointError(f"{KEY}: {path} has a config.json but no weights (*.safetensors or *.bin)")
        if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
            raise CheckpointError(f"{KEY}: {path} has no tokenizer (tokenizer.json or tokenizer.model)")
        hf_config = _hf_config(path)
    else:
        _check_gguf(path)
        hf_config = _hf_config(path.parent, gguf_file=path.name)
    name = litgpt_name(hf_config, architecture, hint=path.stem if kind == "gguf" else path.name)
    return kind, Config.from_name(name)


def _hf_config(folder: Path, gguf_file: str | None = None) -> dict[str, Any]:
    """A model's transformers configuration as a dict (for a GGUF file: from its metadata)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file, local_files_only=True)
    except Exception as err:  # transformers raises ValueError, OSError, KeyError… for a config it cannot read
        what = folder / gguf_file if gguf_file else folder / "config.json"
        raise CheckpointError(f"{KEY}: transformers cannot read the configuration of {what}: {_line(err)}") from None
    return config.to_dict()


def _check_gguf(path: Path) -> None:
    """A GGUF file that parses, of an architecture transformers loads, whose every tensor type dequantises: one
    tensor of each type (the smallest) is dequantised with gguf's own `dequantize`, which transformers calls."""
    from gguf import GGUFReader, dequantize
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise CheckpointError(f"{KEY}: {path} does not start with the GGUF magic bytes; expected a GGUF file")
    try:
        reader = GGUFReader(path)
        architecture = str(reader.fields["general.architecture"].contents())
    except Exception as err:  # the reader fails in many ways on a truncated or corrupt file
        raise CheckpointError(f"{KEY}: {path} is not a readable GGUF file ({_line(err)})") from None
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"{KEY}: {path} is a GGUF of architecture {architecture!r}, which transformers cannot load; expected one "
            f"of {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}"
        )
    smallest: dict[Any, Any] = {}
    for tensor in reader.tensors:
        known = smallest.get(tensor.tensor_type)
        if known is None or tensor.n_elements < known.n_elements:
            smallest[tensor.tensor_type] = tensor
    for qtype, tensor in smallest.items():
        try:
            dequantize(tensor.data, qtype)
        except NotImplementedError:
            raise CheckpointError(
                f"{KEY}: {path} holds tensors quantised as {qtype.name}, which gguf cannot dequantise; expected a "
                "quantisation transformers loads (F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, …)"
            ) from None


# transformers configuration key -> litgpt Config attribute, compared exactly
_SHAPE = {
    "num_hidden_layers": "n_layer",
    "hidden_size": "n_embd",
    "num_attention_heads": "n_head",
    "intermediate_size": "intermediate_size",
    "vocab_size": "padded_vocab_size",
}


def litgpt_name(hf_config: dict[str, Any], architecture: str | None = None, hint: str = "") -> str:
    """The litgpt configuration a transformers configuration describes.

    `architecture` (`model.architecture`) is checked against the configuration and taken when it fits. Otherwise
    the candidates are litgpt's configurations whose layers, width, heads, query groups, MLP width, vocabulary,
    rotary base and norm epsilon equal the configuration's; several that differ only in their names (a base model
    and its instruct variant) are one architecture, and the one whose name `hint` (the folder or file name) holds
    is preferred.

    Raises:
        CheckpointError: when none fits, or candidates differ in more than their names.
    """
    from litgpt import Config
    from litgpt.config import name_to_config

    def fits(config: Any) -> bool:
        if any(hf_config.get(key) != getattr(config, attr) for key, attr in _SHAPE.items()):
            return False
        groups = hf_config.get("num_key_value_heads") or hf_config.get("num_attention_heads")
        theta = hf_config.get("rope_theta")
        eps = hf_config.get("rms_norm_eps", hf_config.get("layer_norm_eps"))
        return (
            groups == config.n_query_groups
            and (theta is None or math.isclose(float(theta), float(config.rope_base), rel_tol=1e-6))
            and (eps is None or math.isclose(float(eps), float(config.norm_eps), rel_tol=1e-3))
        )

    described = ", ".join(f"{k} {hf_config.get(k)}" for k in _SHAPE)
    if architecture is not None:
        if architecture not in name_to_config:
            raise CheckpointError(f"model.architecture: got {architecture!r}; expected a litgpt configuration name")
        if not fits(Config.from_name(architecture)):
            raise CheckpointError(
                f"model.architecture: {architecture!r} does not fit {KEY}'s configuration ({described})"
            )
        return architecture
    candidates = [name for name in name_to_config if fits(Config.from_name(name))]
    if not candidates:
        raise CheckpointError(
            f"{KEY}: no litgpt configuration has this model's architecture ({hf_config.get('model_type')}: "
            f"{described}); expected an architecture litgpt knows (litgpt.Config.from_name)"
        )

    def shape(name: str) -> dict[str, Any]:
        return {k: v for k, v in vars(Config.from_name(name)).items() if k not in ("name", "hf_config")}

    if any(shape(name) != shape(candidates[0]) for name in candidates[1:]):
        raise CheckpointError(
            f"{KEY}: several litgpt configurations fit this model ({', '.join(candidates)}); expected "
            "model.architecture to name one"
        )
    named = [name for name in candidates if name.lower() in hint.lower()]
    return max(named, key=len) if named else candidates[0]


def convert(source: Path, out_dir: Path, architecture: str | None = None) -> dict[str, Any]:
    """Converts a Hugging Face folder or GGUF file into a litgpt checkpoint in `out_dir` (created, empty).

    Args:
        source: `model.checkpoint_dir`, a Hugging Face model folder or a `.gguf` file.
        out_dir: where the checkpoint is written (the base_model stage's output).
        architecture: `model.architecture`, the litgpt configuration name, or None to infer it.

    Returns:
        The conversion record, also written to `out_dir/conversion.json`.
    """
    kind, config = check_source(source, architecture)
    if kind == "litgpt":
        raise CheckpointError(f"{KEY}: {source} is a litgpt checkpoint already; nothing to convert")
    from litgpt.scripts.convert_hf_checkpoint import convert_hf_checkpoint

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        hf_dir = Path(tmp) / "hf"
        tokenizer_fix = _gguf_to_hf(source, hf_dir) if kind == "gguf" else _mirror(source, hf_dir)
        with redirect_stdout(StringIO()):  # it prints its arguments, temporary paths included
            convert_hf_checkpoint(hf_dir, model_name=config.name)
        for name in ("lit_model.pth", "model_config.yaml", *HF_FILES):
            if (hf_dir / name).is_file():
                shutil.copyfile(hf_dir / name, out_dir / name)

    record = {
        "source": workspace_path(source),
        "source_kind": kind,
        # a file's own sha256 (what `sha256sum` prints); a folder's over its files' names and contents
        "source_sha256": sha256(source) if source.is_file() else hash_path(source),
        "litgpt_name": config.name,
        "tokenizer": tokenizer_fix,
        "converters": _versions(kind),
    }
    (out_dir / CONVERSION).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _gguf_to_hf(source: Path, hf_dir: Path) -> dict[str, Any]:
    """transformers' GGUF loader: the dequantised model (float32) and its tokenizer, saved as a Hugging Face folder.

    The tokenizer's end-of-sequence token and BOS setting are taken from the GGUF's own metadata
    (`tokenizer.ggml.eos_token_id`, `tokenizer.ggml.add_bos_token`): transformers 4.57 builds the tokenizer of
    SmolLM2's GGUF with `<|im_start|>` as EOS and a BOS added to every prompt, which the file does not say and the
    model was not trained with. Returns what was set this way."""
    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, dtype=torch.float32, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    except Exception as err:
        raise CheckpointError(f"{KEY}: transformers cannot load {source}: {_line(err)}") from None
    fields = GGUFReader(source).fields
    fixed: dict[str, Any] = {}
    if "tokenizer.ggml.eos_token_id" in fields:
        eos = tokenizer.convert_ids_to_tokens(int(fields["tokenizer.ggml.eos_token_id"].contents()))
        if eos != tokenizer.eos_token:
            tokenizer.eos_token = fixed["eos_token"] = eos
            if model.generation_config is not None:
                model.generation_config.eos_token_id = tokenizer.eos_token_id
    if "tokenizer.ggml.add_bos_token" in fields and hasattr(tokenizer, "add_bos_token"):
        add_bos = bool(fields["tokenizer.ggml.add_bos_token"].contents())
        if add_bos != tokenizer.add_bos_token:
            tokenizer.add_bos_token = fixed["add_bos_token"] = add_bos
    model.save_pretrained(hf_dir, safe_serialization=True)
    tokenizer.save_pretrained(hf_dir)
    return {"from_gguf_metadata": fixed} if fixed else {}


def _mirror(source: Path, hf_dir: Path) -> dict[str, Any]:
    """A Hugging Face folder's files in `hf_dir`: weights linked (litgpt's converter only reads them), the small
    files copied (it writes lit_model.pth and model_config.yaml beside them)."""
    hf_dir.mkdir(parents=True)
    for file in sorted(source.iterdir()):
        if not file.is_file():
            continue
        if any(file.match(p) for p in WEIGHT_PATTERNS):
            (hf_dir / file.name).symlink_to(file.resolve())
        elif file.name in HF_FILES:
            shutil.copyfile(file, hf_dir / file.name)
    return {}


def _versions(kind: SourceKind) -> dict[str, str]:
    from importlib.metadata import version

    names = ["litgpt", "torch", "transformers"] + (["gguf"] if kind == "gguf" else [])
    return {name: version(name) for name in names}


def workspace_path(path: Path) -> str:
    """How a record names a user's model: relative to the workspace when it lies inside it (another campaign's
    merged trial, `campaigns/default/merged/t007`; a file under `data/`), so a clone of the workspace records the
    same bytes; absolute otherwise."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
