"""design: the Latin-hypercube initial design of a campaign.

`scipy.stats.qmc.LatinHypercube` places n points in the unit cube so that each of the n equal strata of every
dimension holds exactly one point; each dimension then maps its coordinate to a value (`stages.space`): log
dimensions are stratified in log space, integers are rounded, categoricals take the stratum's choice. The points
come from the design seed (derived from the campaign seed) and enter the study first, through
`study.enqueue_trial`, before any proposer is asked.
"""

from __future__ import annotations

import json
from typing import Any

from scipy.stats import qmc

from stages.config import derive_seed
from stages.layout import CampaignPaths, stage_args
from stages.space import CategoricalDimension, FloatDimension, IntDimension


def latin_hypercube(
    space: dict[str, FloatDimension | IntDimension | CategoricalDimension], n: int, seed: int
) -> list[dict[str, Any]]:
    """Draws n design points over the space.

    Args:
        space: hyperparameter name -> dimension.
        n: number of points (0 gives none).
        seed: the design seed.

    Returns:
        n dicts of hyperparameter values, in the order they are to run.
    """
    if n == 0:
        return []
    names = list(space)
    unit = qmc.LatinHypercube(d=len(names), rng=seed).random(n)
    return [{name: space[name].from_unit(float(u)) for name, u in zip(names, row, strict=True)} for row in unit]


def design(paths: CampaignPaths) -> list[dict[str, Any]]:
    """Writes the campaign's design points to `design.json` and returns them."""
    params = paths.load()
    points = latin_hypercube(params.space, params.campaign.n_init, derive_seed(params.campaign.seed, "design"))
    paths.design.write_text(json.dumps(points, indent=2) + "\n")
    return points


def main() -> None:
    paths, _ = stage_args("Draw the campaign's Latin-hypercube initial design.", trial=False)
    print(json.dumps(design(paths)))


if __name__ == "__main__":
    main()
