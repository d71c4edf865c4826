"""A trial kind is a plug-in (DESIGN C11): the ordered stages it runs and what its progress bar counts. The
campaign machinery (space, design, proposers, records, lineage, report, compare) is the same for every kind."""

from __future__ import annotations

from types import ModuleType

from hpo.config import Params


def kind_of(params: Params) -> ModuleType:
    """The module of the campaign's trial kind (`campaign.kind`): `stages()`, `warm_up()`, `progress_total()`."""
    from hpo.trials import finetune, generation, joint

    return {"finetune": finetune, "generate": generation, "joint": joint}[params.campaign.kind]
