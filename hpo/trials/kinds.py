"""A trial kind is a plug-in (DESIGN C11): the ordered stages it runs (their dvc.yaml names), what its worker
imports before the first trial and what its progress bar counts. The campaign machinery (space, design,
proposers, records, lineage, report, compare) is the same for every kind."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hpo.config import Params

if TYPE_CHECKING:
    from hpo.record.layout import CampaignPaths

# A trial stage's function: `run(paths, trial_id)` of its module in `stages/`, what `python -m stages.<name>` runs.
StageFunction = Callable[["CampaignPaths", str], Any]


def kind_of(params: Params) -> ModuleType:
    """The module of the campaign's trial kind (`campaign.kind`): `STAGES`, `warm_up()`, `progress_total()`."""
    from hpo.trials import finetune, generation, joint

    return {"finetune": finetune, "generate": generation, "joint": joint}[params.campaign.kind]
