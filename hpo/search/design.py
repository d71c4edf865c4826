"""The initial design: Latin-hypercube points over a search space.

`scipy.stats.qmc.LatinHypercube` places n points in the unit cube so that each of the n equal strata of every
dimension holds exactly one point; each dimension then maps its coordinate to a value (`hpo.config.space`): log
dimensions are stratified in log space, integers are rounded, categoricals take the stratum's choice.
"""

from __future__ import annotations

from typing import Any

from scipy.stats import qmc

from hpo.config.space import CategoricalDimension, FloatDimension, IntDimension


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
