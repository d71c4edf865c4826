"""Tabular HPO problems for `bench/search_quality.py`: scikit-learn models on its bundled data over small grids of
integer, ordinal and categorical hyperparameters, every grid point evaluated once per repeat and kept.

    python bench/search_tables.py              # builds the missing tables into bench/search_tables/ (13 min, 2 cores)
    python bench/search_tables.py --force svc_digits   # rebuilds one

Each table is `bench/search_tables/<name>.npz`: `values`, shape (grid points, REPEATS), float32, the validation
loss (log loss, error rate or MSE on a standardised target: lower is better) of the model trained with that grid
point in repeat r, a repeat being one random train/validation split and model seed (`random_state=r`). The
repeats are the noise a real evaluation has: a bench run evaluates a point by picking one repeat with a generator
seeded by (run seed, evaluation index), so two runs of the same seed see the same values and two seeds do not.

How a grid becomes a space of the project's dimension types (`hpo.config.space`), per hyperparameter:
- `int`: consecutive integer values (n_neighbors 1..30, max_depth 1..4, an exponent k of C = 2**k):
  `IntDimension(low, high[, log])` over the values themselves;
- `ordinal`: an ordered grid of numbers (learning_rate in {0.01, 0.03, 0.1, 0.3}): `IntDimension(0, k - 1)` over the
  grid's index, so proposers that model order (GP, TPE) can use it;
- `categorical`: unordered choices (kernel, activation, criterion): `CategoricalDimension(choices)` of strings.
A proposed point is on the grid exactly (an integer is an index or a value), so the lookup is exact.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

TABLES = Path(__file__).resolve().parent / "search_tables"
REPEATS = 3


@dataclass(frozen=True)
class Grid:
    """One hyperparameter: how it enters the space (`int`, `ordinal`, `categorical`) and its grid of values."""

    name: str
    kind: str
    values: tuple[Any, ...]
    log: bool = False


@dataclass(frozen=True)
class Table:
    """A tabular problem: the grid, and how one grid point is trained and scored in repeat r (lower is better)."""

    name: str
    description: str
    grid: tuple[Grid, ...]
    loss: Callable[[dict[str, Any], int], float]

    @property
    def size(self) -> int:
        return math.prod(len(g.values) for g in self.grid)

    def space(self) -> dict[str, Any]:
        """The problem's search space in the project's dimension types."""
        from hpo.config.space import CategoricalDimension, IntDimension

        space: dict[str, Any] = {}
        for g in self.grid:
            if g.kind == "int":
                space[g.name] = IntDimension(type="int", low=g.values[0], high=g.values[-1], log=g.log)
            elif g.kind == "ordinal":
                space[g.name] = IntDimension(type="int", low=0, high=len(g.values) - 1)
            else:
                space[g.name] = CategoricalDimension(type="categorical", choices=[str(v) for v in g.values])
        return space

    def cell(self, point: dict[str, Any]) -> int:
        """The grid point (row of `values`) a proposed point falls on."""
        index = []
        for g in self.grid:
            v = point[g.name]
            if g.kind == "int":
                index.append(int(v) - g.values[0])
            elif g.kind == "ordinal":
                index.append(int(v))
            else:
                index.append([str(c) for c in g.values].index(str(v)))
        return int(np.ravel_multi_index(index, [len(g.values) for g in self.grid]))

    def values(self) -> np.ndarray:
        return load(self.name)


def _quiet() -> None:
    warnings.filterwarnings("ignore")


# --- data: small, so that a table builds in about a minute -------------------------------------------------------


@cache
def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name == "digits":  # half of it: a table builds in about a minute
        x, y = datasets.load_digits(return_X_y=True)
        return x[:900], y[:900]
    if name == "breast_cancer":
        return datasets.load_breast_cancer(return_X_y=True)
    if name == "wine":
        return datasets.load_wine(return_X_y=True)
    if name == "diabetes":
        x, y = datasets.load_diabetes(return_X_y=True)
        return x, (y - y.mean()) / y.std()
    if name == "synthetic4":  # covertype-like: several classes, imbalanced, a few informative features, label noise
        return datasets.make_classification(
            n_samples=1500,
            n_features=30,
            n_informative=10,
            n_redundant=5,
            n_classes=4,
            weights=[0.4, 0.3, 0.2, 0.1],
            class_sep=0.8,
            flip_y=0.03,
            random_state=0,
        )
    if name == "synthetic2":
        return datasets.make_classification(
            n_samples=2000, n_features=40, n_informative=12, n_redundant=8, flip_y=0.05, random_state=1
        )
    raise KeyError(name)


def _split(data: str, r: int, valid: float = 0.3, classify: bool = True) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    x, y = _data(data)
    return train_test_split(x, y, test_size=valid, random_state=r, stratify=y if classify else None)


def _log_loss(model: Any, data: str, r: int) -> float:
    from sklearn.metrics import log_loss

    xt, xv, yt, yv = _split(data, r)
    model.fit(xt, yt)
    return float(log_loss(yv, model.predict_proba(xv), labels=np.unique(yt)))


def _error(model: Any, data: str, r: int) -> float:
    xt, xv, yt, yv = _split(data, r)
    model.fit(xt, yt)
    return float(np.mean(model.predict(xv) != yv))


def _mse(model: Any, data: str, r: int) -> float:
    xt, xv, yt, yv = _split(data, r, classify=False)
    model.fit(xt, yt)
    return float(np.mean((model.predict(xv) - yv) ** 2))


def _scaler(name: str) -> Any:
    from sklearn import preprocessing

    return {
        "none": "passthrough",
        "standard": preprocessing.StandardScaler(),
        "minmax": preprocessing.MinMaxScaler(),
        "robust": preprocessing.RobustScaler(),
        "quantile": preprocessing.QuantileTransformer(n_quantiles=100),
    }[name]


# --- the models: p holds each hyperparameter's grid value ---------------------------------------------------------


def hgb_breast_cancer(p: dict[str, Any], r: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        learning_rate=p["learning_rate"],
        max_iter=p["max_iter"],
        max_leaf_nodes=p["max_leaf_nodes"],
        min_samples_leaf=p["min_samples_leaf"],
        l2_regularization=p["l2_regularization"],
        early_stopping=False,
        random_state=r,
    )
    return _log_loss(model, "breast_cancer", r)


def hgb_synthetic(p: dict[str, Any], r: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        learning_rate=p["learning_rate"],
        max_iter=40,
        max_depth=p["max_depth"],
        min_samples_leaf=p["min_samples_leaf"],
        l2_regularization=p["l2_regularization"],
        max_bins=p["max_bins"],
        early_stopping=False,
        random_state=r,
    )
    return _log_loss(model, "synthetic4", r)


def svc_digits(p: dict[str, Any], r: int) -> float:
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    model = make_pipeline(
        _scaler(p["scaler"]),
        SVC(C=2.0 ** p["log2_C"], gamma=2.0 ** p["log2_gamma"], kernel=p["kernel"], random_state=r),
    )
    return _error(model, "digits", r)


def mlp_wine(p: dict[str, Any], r: int) -> float:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    hidden = tuple(int(h) for h in p["hidden_layers"].split("-"))
    model = make_pipeline(
        _scaler("standard"),
        MLPClassifier(
            hidden_layer_sizes=hidden,
            activation=p["activation"],
            alpha=10.0 ** p["log10_alpha"],
            learning_rate_init=p["learning_rate_init"],
            batch_size=p["batch_size"],
            max_iter=40,
            random_state=r,
        ),
    )
    return _log_loss(model, "wine", r)


def rf_synthetic(p: dict[str, Any], r: int) -> float:
    from sklearn.ensemble import RandomForestClassifier

    features = p["max_features"]
    model = RandomForestClassifier(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        max_features=features if features in ("sqrt", "log2") else float(features),
        min_samples_leaf=p["min_samples_leaf"],
        criterion=p["criterion"],
        random_state=r,
    )
    return _log_loss(model, "synthetic4", r)


def knn_digits(p: dict[str, Any], r: int) -> float:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        _scaler(p["scaler"]),
        KNeighborsClassifier(n_neighbors=p["n_neighbors"], weights=p["weights"], p=p["p"], algorithm="brute"),
    )
    return _error(model, "digits", r)


def ridge_diabetes(p: dict[str, Any], r: int) -> float:
    from sklearn.feature_selection import SelectKBest, f_regression
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    poly = PolynomialFeatures(p["degree"], interaction_only=p["interaction_only"] == "true", include_bias=False)
    n = poly.fit(_data("diabetes")[0][:2]).n_output_features_
    model = make_pipeline(
        poly,
        _scaler(p["scaler"]),
        SelectKBest(f_regression, k=max(1, round(p["keep_features"] * n))),
        Ridge(alpha=10.0 ** p["log10_alpha"]),
    )
    return _mse(model, "diabetes", r)


def gb_diabetes(p: dict[str, Any], r: int) -> float:
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(
        n_estimators=p["n_estimators"],
        learning_rate=p["learning_rate"],
        max_depth=p["max_depth"],
        subsample=p["subsample"],
        min_samples_leaf=p["min_samples_leaf"],
        random_state=r,
    )
    return _mse(model, "diabetes", r)


def sgd_synthetic(p: dict[str, Any], r: int) -> float:
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        _scaler("standard"),
        SGDClassifier(
            loss=p["loss"],
            penalty=p["penalty"],
            alpha=10.0 ** p["log10_alpha"],
            learning_rate=p["learning_rate"],
            eta0=0.01,
            average=p["average"] == "true",
            max_iter=30,
            random_state=r,
        ),
    )
    return _error(model, "synthetic2", r)


def _g(name: str, kind: str, *values: Any, log: bool = False) -> Grid:
    if kind == "int":
        values = tuple(range(values[0], values[1] + 1))
    return Grid(name, kind, tuple(values), log)


TABLE_LIST = [
    Table(
        "hgb_breast_cancer",
        "HistGradientBoostingClassifier, breast cancer, log loss",
        (
            _g("learning_rate", "ordinal", 0.01, 0.03, 0.1, 0.3),
            _g("max_iter", "ordinal", 10, 30, 100),
            _g("max_leaf_nodes", "ordinal", 4, 8, 16, 32),
            _g("min_samples_leaf", "ordinal", 2, 8, 32),
            _g("l2_regularization", "ordinal", 0.0, 1.0, 10.0),
        ),
        hgb_breast_cancer,
    ),
    Table(
        "hgb_synthetic",
        "HistGradientBoostingClassifier (40 iterations), 4-class synthetic, log loss",
        (
            _g("learning_rate", "ordinal", 0.03, 0.1, 0.3),
            _g("max_depth", "categorical", 2, 3, 5, None),
            _g("min_samples_leaf", "ordinal", 5, 20, 80),
            _g("l2_regularization", "ordinal", 0.0, 1.0, 10.0),
            _g("max_bins", "ordinal", 16, 64, 255),
        ),
        hgb_synthetic,
    ),
    Table(
        "svc_digits",
        "SVC, digits, error rate",
        (
            _g("log2_C", "int", -2, 9),
            _g("log2_gamma", "int", -14, -3),
            _g("kernel", "categorical", "rbf", "poly", "sigmoid"),
            _g("scaler", "categorical", "minmax", "standard"),
        ),
        svc_digits,
    ),
    Table(
        "mlp_wine",
        "MLPClassifier (40 epochs), wine, log loss",
        (
            _g("hidden_layers", "categorical", "8", "32", "8-8", "32-32"),
            _g("activation", "categorical", "relu", "tanh", "logistic"),
            _g("log10_alpha", "int", -5, 0),
            _g("learning_rate_init", "ordinal", 0.001, 0.003, 0.01, 0.03),
            _g("batch_size", "ordinal", 16, 64),
        ),
        mlp_wine,
    ),
    Table(
        "rf_synthetic",
        "RandomForestClassifier, 4-class synthetic, log loss",
        (
            _g("n_estimators", "ordinal", 10, 25, 50),
            _g("max_depth", "ordinal", 2, 4, 8, 16, None),
            _g("max_features", "categorical", "sqrt", "log2", "0.25", "0.5"),
            _g("min_samples_leaf", "ordinal", 1, 3, 10),
            _g("criterion", "categorical", "gini", "entropy"),
        ),
        rf_synthetic,
    ),
    Table(
        "knn_digits",
        "KNeighborsClassifier, digits, error rate",
        (
            _g("n_neighbors", "int", 1, 30, log=True),
            _g("weights", "categorical", "uniform", "distance"),
            _g("p", "int", 1, 2),
            _g("scaler", "categorical", "none", "standard", "minmax"),
        ),
        knn_digits,
    ),
    Table(
        "ridge_diabetes",
        "polynomial features + scaler + SelectKBest + Ridge, diabetes, MSE (standardised target)",
        (
            _g("degree", "int", 1, 3),
            _g("interaction_only", "categorical", "false", "true"),
            _g("scaler", "categorical", "standard", "robust", "quantile"),
            _g("keep_features", "ordinal", 0.25, 0.5, 1.0),
            _g("log10_alpha", "int", -4, 4),
        ),
        ridge_diabetes,
    ),
    Table(
        "gb_diabetes",
        "GradientBoostingRegressor, diabetes, MSE (standardised target)",
        (
            _g("n_estimators", "ordinal", 20, 50, 100),
            _g("learning_rate", "ordinal", 0.01, 0.03, 0.1, 0.3),
            _g("max_depth", "int", 1, 4),
            _g("subsample", "ordinal", 0.5, 0.75, 1.0),
            _g("min_samples_leaf", "ordinal", 1, 5, 20),
        ),
        gb_diabetes,
    ),
    Table(
        "sgd_synthetic",
        "SGDClassifier (30 epochs), 2-class synthetic, error rate",
        (
            _g("loss", "categorical", "hinge", "log_loss", "modified_huber", "perceptron"),
            _g("penalty", "categorical", "l2", "l1", "elasticnet"),
            _g("log10_alpha", "int", -6, -1),
            _g("learning_rate", "categorical", "optimal", "invscaling", "adaptive"),
            _g("average", "categorical", "false", "true"),
        ),
        sgd_synthetic,
    ),
]
TABLE_BY_NAME = {t.name: t for t in TABLE_LIST}


@cache
def load(name: str) -> np.ndarray:
    """A table's values, shape (grid points, REPEATS)."""
    with np.load(TABLES / f"{name}.npz") as f:
        return f["values"]


def _row(args: tuple[str, int]) -> tuple[str, int, list[float], float]:
    """Evaluates grid point `i` of table `name` in every repeat."""
    _quiet()
    name, i = args
    table = TABLE_BY_NAME[name]
    index = np.unravel_index(i, [len(g.values) for g in table.grid])
    point = {g.name: g.values[k] for g, k in zip(table.grid, index, strict=True)}
    began = time.perf_counter()
    values = [table.loss(point, r) for r in range(REPEATS)]
    return name, i, values, time.perf_counter() - began


def build(names: list[str], jobs: int) -> None:
    TABLES.mkdir(exist_ok=True)
    for name in names:
        table = TABLE_BY_NAME[name]
        began = time.perf_counter()
        values = np.full((table.size, REPEATS), np.nan, dtype=np.float32)
        with ProcessPoolExecutor(jobs) as pool:
            for _, i, row, _ in pool.map(_row, [(name, i) for i in range(table.size)], chunksize=8):
                values[i] = row
        np.savez_compressed(TABLES / f"{name}.npz", values=values)
        means = values.mean(axis=1)
        print(
            f"{name}: {table.size} points x {REPEATS} repeats in {time.perf_counter() - began:.0f} s; "
            f"best mean {means.min():.4g}, median {np.median(means):.4g}, repeat sd {values.std(axis=1).mean():.3g}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", nargs="*", default=[], choices=list(TABLE_BY_NAME), help="tables to rebuild")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--time", action="store_true", help="time one grid point of each table and exit")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.time:
        for t in TABLE_LIST:
            _, _, v, took = _row((t.name, t.size - 1))
            _, _, v0, took0 = _row((t.name, t.size // 2))
            print(f"{t.name}: {t.size} points, {took:.2f}/{took0:.2f} s a point ({v}, {v0})", flush=True)
        return
    build([t.name for t in TABLE_LIST if t.name in args.force or not (TABLES / f"{t.name}.npz").is_file()], args.jobs)


if __name__ == "__main__":
    main()
