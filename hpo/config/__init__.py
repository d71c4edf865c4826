"""params.yaml -> typed, validated, frozen objects; the one place that knows the schema.

Every section of a params file maps to one model here. Loading fails with a single `ParamsError` that names the
file, the key, the value and what was expected, before anything is written.

- `vocabulary` — the names a declaration may use (what each kind searches, samplers, pruners, utilities),
  litgpt's LoRA defaults, and the seed and trial id every record derives;
- `sections` — one model per section (campaign, data, model, train, eval, generate), each checking its own keys;
- `rules` — the checks between sections (the space against the kind, the model's limits, the pruner's needs);
- `params` — `Params`, the whole declaration, and one trial's settings, seeds and threads;
- `load` — `load_params`: YAML → `Params`, or one `ParamsError`.

Every public name is importable from `hpo.config` itself.
"""

from hpo.config.load import DuplicateKeyError, ParamsError, describe_error, load_params, parse_unique_yaml
from hpo.config.params import Params
from hpo.config.sections import (
    CampaignSection,
    DataSection,
    EvalSection,
    GenerateSection,
    HyperbandPruner,
    MedianPruner,
    ModelSection,
    PercentilePruner,
    Prices,
    Pruner,
    StopAfter,
    SuccessiveHalvingPruner,
    TinyModel,
    TrainSection,
    WarmStart,
    merged_model,
)
from hpo.config.space import CategoricalDimension, Dimension, FloatDimension, IntDimension
from hpo.config.vocabulary import (
    GEN_TUNABLE,
    KIND_TUNABLE,
    LITGPT_LORA_DEFAULTS,
    PRUNERS,
    SAMPLERS,
    TASK_DEFAULT,
    TRIAL_REFERENCE,
    TUNABLE,
    UTILITIES,
    UTILITY_FUNCTION,
    derive_seed,
    trial_id,
)

__all__ = [
    "GEN_TUNABLE",
    "KIND_TUNABLE",
    "LITGPT_LORA_DEFAULTS",
    "PRUNERS",
    "SAMPLERS",
    "TASK_DEFAULT",
    "TRIAL_REFERENCE",
    "TUNABLE",
    "UTILITIES",
    "UTILITY_FUNCTION",
    "CampaignSection",
    "CategoricalDimension",
    "DataSection",
    "Dimension",
    "DuplicateKeyError",
    "EvalSection",
    "FloatDimension",
    "GenerateSection",
    "HyperbandPruner",
    "IntDimension",
    "MedianPruner",
    "ModelSection",
    "Params",
    "ParamsError",
    "PercentilePruner",
    "Prices",
    "Pruner",
    "StopAfter",
    "SuccessiveHalvingPruner",
    "TinyModel",
    "TrainSection",
    "WarmStart",
    "derive_seed",
    "describe_error",
    "load_params",
    "merged_model",
    "parse_unique_yaml",
    "trial_id",
]
