"""params files load into validated objects; each kind of bad value names its key."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from hpo.config import LITGPT_LORA_DEFAULTS, ParamsError, load_params

from .helpers import ROOT

SHIPPED = sorted([*ROOT.glob("params*.yaml"), *ROOT.glob("tests/params*.yaml")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_params_load(path: Path) -> None:
    params = load_params(path)
    assert params.campaign.n_init <= params.campaign.n_trials
    assert set(params.baseline_values()) == set(params.space)


def test_tinyllama_has_the_inria_bounds() -> None:
    import math

    space = load_params(ROOT / "params.tinyllama.yaml").space
    assert space["learning_rate"].low == pytest.approx(math.exp(-10))
    assert space["learning_rate"].high == pytest.approx(math.exp(-1))
    assert space["weight_decay"].low == pytest.approx(math.exp(-5))
    assert space["weight_decay"].high == pytest.approx(math.exp(1))
    assert (space["lora_r"].low, space["lora_r"].high) == (2, 500)
    assert (space["lora_alpha"].low, space["lora_alpha"].high) == (1, 64)
    assert (space["gradient_accumulation"].low, space["gradient_accumulation"].high) == (1, 32)
    assert all(space[k].log for k in ("learning_rate", "weight_decay"))


def test_baseline_is_litgpts_own_default() -> None:
    from litgpt.finetune.lora import setup

    sig = inspect.signature(setup).parameters
    for name in ("lora_r", "lora_alpha", "lora_dropout"):
        assert LITGPT_LORA_DEFAULTS[name] == sig[name].default
    assert sig["optimizer"].default == "AdamW"
    torch_adamw = inspect.signature(__import__("torch").optim.AdamW).parameters
    assert LITGPT_LORA_DEFAULTS["learning_rate"] == torch_adamw["lr"].default
    assert LITGPT_LORA_DEFAULTS["weight_decay"] == torch_adamw["weight_decay"].default
    assert LITGPT_LORA_DEFAULTS["global_batch_size"] == sig["train"].default.global_batch_size


def _with(tmp_path: Path, change: dict, remove: tuple[str, ...] = (), base: str = "params.yaml") -> Path:
    raw = yaml.safe_load((ROOT / base).read_text())
    for dotted, value in change.items():
        node = raw
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    for dotted in remove:
        node = raw
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[p]
        del node[last]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BAD = [
    ({"campaign.seed": "abc"}, (), "campaign.seed", "'abc'"),
    ({"campaign.n_trials": 0}, (), "campaign.n_trials", "0"),
    ({"campaign.sampler": "bayes"}, (), "campaign.sampler", "'bayes'"),
    ({"campaign.n_init": 50}, (), "n_init (50) must be <= n_trials", "50"),
    ({"space.learning_rate.low": 1.0}, (), "space.learning_rate", "low must be < high"),
    ({"space.learning_rate.low": -1.0}, (), "space.learning_rate", "low=-1.0"),
    ({"space.learning_rate.low": 0.0}, (), "space.learning_rate", "log-scale dimension needs low > 0"),
    ({"space.lora_r": {"type": "float", "low": 1.0, "high": 8.0}}, (), "space.lora_r", "expected type: int"),
    ({"space.momentum": {"type": "float", "low": 0.1, "high": 0.9}}, (), "space.momentum", "unknown hyperparameter"),
    (
        {"space.temperature": {"type": "float", "low": 0.1, "high": 0.9}},
        (),
        "space.temperature",
        "campaign.kind generate",
    ),
    ({"space.lora_dropout": {"type": "categorical", "choices": []}}, (), "space.lora_dropout.choices", "[]"),
    ({"space.lora_dropout.high": 2.0}, (), "space.lora_dropout", "value 2.0 is not a valid lora_dropout"),
    ({"space.lora_r.type": "integer"}, (), "space.lora_r", "'integer'"),
    ({"train.micro_batch_size": 0}, (), "train.micro_batch_size", "0"),
    ({"train.learning_rat": 0.1}, (), "train.learning_rat", "unknown key"),
    ({"eval.tasks": []}, (), "eval.tasks", "[]"),
    ({"eval.direction": "up"}, (), "eval.direction", "'up'"),
    ({}, ("data.path",), "data.path", "missing"),
    ({"data.corpus": None}, (), "data.corpus", "needs a corpus"),
]


@pytest.mark.parametrize(("change", "remove", "key", "value"), BAD, ids=[b[2] + ":" + b[3] for b in BAD])
def test_bad_value_names_its_key(tmp_path: Path, change: dict, remove: tuple, key: str, value: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(_with(tmp_path, change, remove))
    message = str(err.value)
    assert "\n" not in message
    assert key in message and value in message, message


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("campaign: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


@pytest.mark.parametrize("name", [".", "..", "../up", "a/b", ".hidden", "", "with-dash", "x" * 101])
def test_campaign_name_is_one_safe_path_component(tmp_path: Path, name: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(_with(tmp_path, {"campaign.name": name}))
    assert "campaign.name: got" in str(err.value) and "\n" not in str(err.value)


def test_campaign_name_may_hold_dots_inside(tmp_path: Path) -> None:
    assert load_params(_with(tmp_path, {"campaign.name": "lora_v2.1"})).campaign.name == "lora_v2.1"


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = (ROOT / "params.yaml").read_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("n_trials:"))
    lines.insert(at + 2, "  n_trials: 3")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value) == f"{path}: campaign.n_trials: written twice (lines {at + 1} and {at + 3}); expected once"


def test_non_utf8_params_file_names_file_and_offset(tmp_path: Path) -> None:
    data = (ROOT / "params.yaml").read_bytes()
    at = data.index(b"tpe")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(data[:at] + "é".encode("latin-1") + data[at:])
    with pytest.raises(ParamsError) as err:
        load_params(path)
    line = data[:at].count(b"\n") + 1
    assert str(err.value) == f"{path}: byte {at} (line {line}) is 0xe9, not UTF-8; expected UTF-8 text"


@pytest.mark.parametrize(
    ("change", "remove", "expected"),
    [
        (
            {"space.lora_r": {"type": "float", "low": 1.0, "high": 8.0}},
            (),
            "space.lora_r: lora_r is an integer setting; expected type: int",
        ),
        (
            {"data.corpus": None},
            (),
            "data.corpus: missing; the tiny base model (model.checkpoint_dir: null) needs a corpus",
        ),
    ],
)
def test_whole_file_checks_name_the_key_not_the_mapping(
    tmp_path: Path, change: dict, remove: tuple, expected: str
) -> None:
    path = _with(tmp_path, change, remove)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("change", "remove", "expected"),
    [
        (
            {"space.lora_r.high": 10**9},
            (),
            "space.lora_r.high: got 1000000000; expected a LoRA rank <= the model's embedding size 64 "
            "(model.tiny n_embd)",
        ),
        (
            {"train.lora_r": 10**9},
            ("space.lora_r",),
            "train.lora_r: got 1000000000; expected a LoRA rank <= the model's embedding size 64 (model.tiny n_embd)",
        ),
        (
            {"train.max_seq_length": 512},
            (),
            "train.max_seq_length: got 512; expected at most the model's block size 64 (model.tiny block_size)",
        ),
        ({"model.tiny.n_head": 5}, (), "model.tiny: n_embd (64) must be divisible by n_head (5)"),
        ({"model.tiny.n_head": 64}, (), "model.tiny: head size n_embd / n_head = 1 is odd"),
        (
            {"model.tiny.architecture": "SmolLM2-135M", "model.tiny.n_embd": 128},  # one or the other
            (),
            "model.tiny: n_embd: not used with architecture 'SmolLM2-135M' (the architecture gives the sizes)",
        ),
    ],
)
def test_values_no_model_can_take_name_the_limit(tmp_path: Path, change: dict, remove: tuple, expected: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(_with(tmp_path, change, remove))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_long_values_are_cut_in_messages(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(_with(tmp_path, {"campaign.seed": "x" * 500}))
    message = str(err.value).removeprefix(str(tmp_path / "params.yaml"))
    assert len(message) < 200 and "'xxx" in message and "..." in message


GEN_BAD = [
    (
        {"space.temperature": {"type": "float", "low": -1.0, "high": 1.0}},
        "space.temperature: value -1.0 is not a valid",
    ),
    ({"space.top_k": {"type": "int", "low": 0, "high": 5}}, "space.top_k: value 0 is not a valid top_k"),
    ({"space.top_p.high": 1.5}, "space.top_p: value 1.5 is not a valid top_p"),
    ({"space.n": {"type": "float", "low": 1.0, "high": 4.0}}, "space.n: n is an integer setting; expected type: int"),
    ({"space.stop.choices": ["task", "comma"]}, "space.stop: value 'comma' is not a valid stop: stop: got 'comma'"),
    ({"space.learning_rate": {"type": "float", "low": 0.1, "high": 0.9}}, "campaign.kind finetune"),
    ({"generate.stop_sets.period": [""]}, "stop_sets.period: got ['']; expected a list of non-empty strings"),
    ({"generate.utility": "accuracy"}, "generate.utility: got 'accuracy'"),
    ({"campaign.kind": "serve"}, "campaign.kind: got 'serve'"),
    (
        {
            "campaign.kind": "finetune",
            "space": {"learning_rate": {"type": "float", "low": 0.1, "high": 0.9}},
            "campaign.optimization_budget": 1000,
        },
        "campaign: optimization_budget: got 1000 in a finetune campaign",
    ),
]


@pytest.mark.parametrize(("change", "expected"), GEN_BAD, ids=[b[1][:40] for b in GEN_BAD])
def test_generation_campaign_bad_values(tmp_path: Path, change: dict, expected: str) -> None:
    path = _with(tmp_path, change, base="params.generation.yaml")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


SEARCH_BAD = [
    ({"campaign.pruner": {"name": "sometimes"}}, "campaign.pruner: Input tag 'sometimes' found using 'name'"),
    ({"campaign.pruner": {"name": "asha", "min_resource": 0}}, "campaign.pruner.min_resource: got 0"),
    ({"campaign.pruner": {"name": "median", "percentile": 25}}, "campaign.pruner.percentile: unknown key"),
    ({"campaign.pruner": {"name": "percentile"}}, "campaign.pruner.percentile: missing"),
    ({"campaign.stop_after": {"wall_seconds": 0}}, "campaign.stop_after.wall_seconds: got 0"),
    ({"campaign.stop_after": {"hours": 2}}, "campaign.stop_after.hours: unknown key"),
    ({"campaign.objectives": ["lora_params", "score"]}, "campaign: objectives: got ['lora_params', 'score']"),
    ({"campaign.objectives": ["score", "gen_tokens"]}, "campaign: objectives: gen_tokens is not a cost of a finetune"),
    ({"campaign.objectives": ["score", "latency"]}, "campaign.objectives.1: got 'latency'"),
    ({"campaign.constraints": {"train_tokens": -1}}, "campaign: constraints.train_tokens: got -1.0"),
    ({"campaign.constraints": {"gpu_memory": 1}}, "campaign.constraints.gpu_memory"),
    (
        {"campaign.pruner": {"name": "median"}, "space.max_steps": {"type": "int", "low": 10, "high": 60}},
        "campaign.pruner: the space searches max_steps",
    ),
    ({"campaign.pruner": {"name": "median"}, "train.eval_interval": 60}, "train.eval_interval (60) >= train.max_steps"),
    ({"campaign.pruner": {"name": "asha", "min_resource": 60}}, "campaign.pruner.min_resource: got 60; expected fewer"),
    (
        {"campaign.pruner": {"name": "median"}, "campaign.warm_start": {"campaigns": ["old"]}},
        "campaign: pruner: a warm-started campaign's priors have no validation losses",
    ),
    (
        {
            "campaign.constraints": {"wall_seconds": 60},
            "campaign.warm_start": {"campaigns": ["old"]},
            "campaign.pruner": None,
        },
        "campaign: constraints: a warm-started campaign's priors carry no constraint values",
    ),
    (
        {"campaign.objectives": ["score", "train_tokens"], "campaign.pruner": {"name": "median"}},
        "makes a multi-objective campaign, which does not take a pruner",
    ),
    (
        {"campaign.objectives": ["score", "train_tokens"], "campaign.sampler": "skopt"},
        "which does not take sampler skopt",
    ),
    # instance-wise pruning of evaluation (eval.pruner)
    ({"eval.pruner": {"name": "wilcoxon", "chunk": 0}}, "eval.pruner.chunk: got 0"),
    ({"eval.pruner": {"name": "wilcoxon", "chunk": -5}}, "eval.pruner.chunk: got -5"),
    ({"eval.pruner": {"name": "wilcoxon", "alpha": 0.05}}, "eval.pruner.alpha"),
    ({"eval.pruner": {"name": "wilcoxon", "p_threshold": 1.5}}, "eval.pruner.p_threshold: got 1.5"),
    ({"eval.pruner": {"name": "hyperband"}}, "eval.pruner.name: got 'hyperband'"),
    (
        {"eval.pruner": {"name": "wilcoxon", "chunk": 20}, "eval.limit": 10},
        "eval: eval.limit: got 10, below eval.pruner.chunk (20)",
    ),
    (
        {
            "eval.pruner": {"name": "wilcoxon"},
            "campaign.objectives": ["score", "train_tokens"],
            "campaign.pruner": None,
        },
        "eval.pruner: campaign.objectives ['score', 'train_tokens'] has no one best trial",
    ),
]


@pytest.mark.parametrize(("change", "expected"), SEARCH_BAD, ids=[b[1][:40] for b in SEARCH_BAD])
def test_pruner_and_budget_bad_values(tmp_path: Path, change: dict, expected: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(_with(tmp_path, change))
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_pruner_and_training_budget_are_refused_where_nothing_trains(tmp_path: Path) -> None:
    for change, expected in (
        ({"campaign.pruner": {"name": "median"}}, "campaign: pruner: got 'median' in a generate campaign"),
        ({"campaign.stop_after": {"train_tokens": 10}}, "campaign: stop_after.train_tokens: got 10 in a generate"),
    ):
        with pytest.raises(ParamsError) as err:
            load_params(_with(tmp_path, change, base="params.generation.yaml"))
        assert expected in str(err.value), str(err.value)
    params = load_params(_with(tmp_path, {"campaign.pruner": {"name": "hyperband"}}))
    from hpo.search.training_pruning import describe, make_pruner

    pruner = make_pruner(params)
    assert type(pruner).__name__ == "HyperbandPruner" and pruner._max_resource == params.train.max_steps
    assert describe(params) == "campaign.pruner hyperband (min_resource=10, reduction_factor=3, bootstrap_count=0)"


JOINT_BAD = [
    ({"space.top_k": {"type": "int", "low": 0, "high": 5}}, "space.top_k: value 0 is not a valid top_k"),
    ({"space.lora_r": {"type": "int", "low": 0, "high": 4}}, "space.lora_r: value 0 is not a valid lora_r"),
    (
        {"space.model_name": {"type": "int", "low": 1, "high": 4}},
        "space.model_name: unknown hyperparameter for a joint",
    ),
    ({"model.trial": "default"}, "model.trial: got 'default'"),
    ({"model.trial": "default/t003", "model.checkpoint_dir": "elsewhere"}, "both set; expected one"),
]


@pytest.mark.parametrize(("change", "expected"), JOINT_BAD, ids=[b[1][:40] for b in JOINT_BAD])
def test_joint_campaign_bad_values(tmp_path: Path, change: dict, expected: str) -> None:
    path = _with(tmp_path, change, base="params.joint.yaml")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_joint_trial_settings_split_between_training_and_generation() -> None:
    params = load_params(ROOT / "params.joint.yaml")
    assert (params.campaign.trains, params.campaign.generates) == (True, True)
    values = {"learning_rate": 0.01, "lora_r": 4, "temperature": 0.7, "n": 3}
    train, settings = params.trial_train(values), params.trial_generate(values)
    assert (train.learning_rate, train.lora_r, settings.temperature, settings.n) == (0.01, 4, 0.7, 3)
    baseline = params.baseline_values()
    assert (baseline["learning_rate"], baseline["lora_r"]) == (LITGPT_LORA_DEFAULTS["learning_rate"], 8)
    assert baseline["temperature"] == 0.0 and baseline["n"] == 1  # the generate section's settings
    assert set(params.seeds()) == {"sampler", "design", "train", "eval", "generate"}


def test_a_named_trial_is_the_base_model(tmp_path: Path) -> None:
    params = load_params(_with(tmp_path, {"model.trial": "default/t007"}, base="params.generation.yaml"))
    assert params.model.checkpoint_dir == Path("campaigns/default/merged/t007")
    # the frozen record (both keys, consistent) loads again
    frozen = tmp_path / "frozen.yaml"
    frozen.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    assert load_params(frozen).model == params.model


def test_generation_baseline_is_the_generate_sections_settings() -> None:
    params = load_params(ROOT / "params.generation.yaml")
    assert params.campaign.kind == "generate"
    assert params.baseline_values()["temperature"] == params.generate.temperature == 0.0
    assert set(params.seeds()) == {"sampler", "design", "train", "eval", "generate"}
    settings = params.trial_generate({"stop": "period", "n": 3})
    assert (settings.stop_sets[settings.stop], settings.n, settings.max_new_tokens) == (["."], 3, 8)
