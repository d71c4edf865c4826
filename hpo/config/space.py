"""Search-space dimensions and their transforms.

A dimension maps a point of the unit interval to a value (`from_unit`), which is how the Latin-hypercube design
places points: log dimensions are stratified in log space, integers are rounded after the transform, and
categoricals take the stratum `floor(u * k)`. The same dimension also builds the Optuna distribution and the
scikit-optimize dimension, so every proposer searches exactly the declared space.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Dimension(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Range(_Dimension):
    """A dimension with bounds [low, high], optionally on a log scale; the bounds are checked when it is built."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _check_bounds(self) -> _Range:
        _check_range(self.low, self.high, self.log)
        return self


class FloatDimension(_Range):
    """A real-valued hyperparameter in [low, high], optionally on a log scale."""

    type: Literal["float"]

    def from_unit(self, u: float) -> float:
        """Maps u in [0, 1] to a value, uniformly in log space when `log` is set."""
        return _interpolate(self.low, self.high, u, self.log)

    def contains(self, value: Any) -> bool:
        """Whether `value` lies inside the dimension."""
        return isinstance(value, int | float) and self.low <= float(value) <= self.high


class IntDimension(_Range):
    """An integer hyperparameter in [low, high] (both included), optionally on a log scale."""

    type: Literal["int"]
    low: int
    high: int

    def from_unit(self, u: float) -> int:
        """Maps u in [0, 1] to an integer; strata are equal-width in (log) [low - 0.5, high + 0.5]."""
        value = _interpolate(self.low - 0.5, self.high + 0.5, u, self.log)  # log: low >= 1, so low - 0.5 > 0
        return int(min(self.high, max(self.low, round(value))))

    def contains(self, value: Any) -> bool:
        """Whether `value` is an integer inside the dimension."""
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high


class CategoricalDimension(_Dimension):
    """A hyperparameter that takes one of a list of choices."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)
    log: Literal[False] = False

    def from_unit(self, u: float) -> Any:
        """Maps u in [0, 1] to the choice of its stratum."""
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def contains(self, value: Any) -> bool:
        """Whether `value` is one of the choices."""
        return value in self.choices


Dimension = Annotated[FloatDimension | IntDimension | CategoricalDimension, Field(discriminator="type")]


def _interpolate(low: float, high: float, u: float, log: bool) -> float:
    """The point at fraction u of [low, high], in log space when `log` is set."""
    if log:
        return float(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return float(low + u * (high - low))


def _check_range(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"low must be < high, got low={low} and high={high}")
    if log and low <= 0:
        raise ValueError(f"a log-scale dimension needs low > 0, got low={low}")


def optuna_distribution(dimension: FloatDimension | IntDimension | CategoricalDimension) -> Any:
    """Builds the Optuna distribution for a dimension."""
    import optuna.distributions as d

    if isinstance(dimension, FloatDimension):
        return d.FloatDistribution(dimension.low, dimension.high, log=dimension.log)
    if isinstance(dimension, IntDimension):
        return d.IntDistribution(dimension.low, dimension.high, log=dimension.log)
    return d.CategoricalDistribution(dimension.choices)


def skopt_dimension(name: str, dimension: FloatDimension | IntDimension | CategoricalDimension) -> Any:
    """Builds the scikit-optimize dimension for a dimension."""
    from skopt.space import Categorical, Integer, Real

    prior = "log-uniform" if dimension.log else "uniform"
    if isinstance(dimension, FloatDimension):
        return Real(dimension.low, dimension.high, prior=prior, name=name)
    if isinstance(dimension, IntDimension):
        return Integer(dimension.low, dimension.high, prior=prior, name=name)
    return Categorical(dimension.choices, name=name)
