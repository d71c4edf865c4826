"""A trial kind is a plug-in (docs/design.md#trial-kinds): the ordered stages it runs (their dvc.yaml names), what its
worker imports before the first trial and what its progress bar counts. The campaign machinery (space, design,
proposers, records, lineage, report, compare) is the same for every kind."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from hpo.config import Params
from hpo.trials import finetune, generation, joint

if TYPE_CHECKING:
    from hpo.layout import CampaignPaths
    from hpo.trials.pruners import Pruners


class StageFunction(Protocol):
    """A trial stage's function: `run(paths, trial_id, *, params, pruners)` of its module in `stages/`, what
    `python -m stages.<name>` runs (with neither `params` nor `pruners`: it parses the params file itself and asks
    no pruner) and what a warm worker calls (with the params it parsed for the trial and, for a study trial, its
    live pruners)."""

    def __call__(
        self, paths: CampaignPaths, trial_id: str, /, *, params: Params | None = None, pruners: Pruners | None = None
    ) -> Any: ...


class CampaignStageFunction(Protocol):
    """A campaign's own stage run by a warm worker (the untuned reference: `stages.untuned.untuned`), with the params
    the worker parsed (None: the stage parses the campaign's params file)."""

    def __call__(self, paths: CampaignPaths, /, *, params: Params | None = None) -> dict[str, Any]: ...


def kind_of(params: Params) -> ModuleType:
    """The module of the campaign's trial kind (`campaign.kind`): `STAGES`, `warm_up()`, `progress_total()`."""
    return {"finetune": finetune, "generate": generation, "joint": joint}[params.campaign.kind]
