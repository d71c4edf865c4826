"""Utilities of n sampled responses per instance: what a generation trial's objective is computed from.

Each instance has n responses, each judged correct or not by the task's own metric (lm-eval's `exact_match` with
the task's normalisation options, or any per-response metric of the task). From the judgements:

- `success_rate` — EcoOptiGen's probabilistic success rate (Wang et al. 2023, FLAML's `Completion.tune`
  example): the mean over instances of 1 − (1 − m/n)^n for m correct of n responses, the chance that one of n
  fresh draws from the instance's empirical success rate is correct. The default objective.
- `pass_at_n` — the share of instances with at least one correct response (any-correct).
- `mean_correct` — the mean over instances of m/n (exact match averaged over responses).
- `majority_vote` — the share of instances whose most frequent response is correct (self-consistency; ties go
  to the response that came first).

A campaign may name its own instead, `<file>.py:<function>` in its task folder (as lm-eval's `!function` names a
file beside the task's YAML): `function(correct, answers) -> float`, with the judgements and the task's
normalised answers per instance as above. The folder is a DVC dependency of every generate stage, so editing the
file makes `dvc status` name the trials it scored.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import numbers
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from hpo.config import UTILITIES

Utility = Callable[[Sequence[Sequence[bool]], Sequence[Sequence[str]]], float]


def _check(correct: Sequence[Sequence[bool]]) -> None:
    if not correct:
        raise ValueError("no instances to score")
    empty = [i for i, c in enumerate(correct) if not c]
    if empty:
        raise ValueError(f"instance {empty[0]} has no responses; expected n >= 1 per instance")


def success_rate(correct: Sequence[Sequence[bool]]) -> float:
    """Mean over instances of 1 − (1 − m/n)^n."""
    _check(correct)
    return sum(1 - (1 - sum(c) / len(c)) ** len(c) for c in correct) / len(correct)


def pass_at_n(correct: Sequence[Sequence[bool]]) -> float:
    """Share of instances with a correct response."""
    _check(correct)
    return sum(any(c) for c in correct) / len(correct)


def mean_correct(correct: Sequence[Sequence[bool]]) -> float:
    """Mean over instances of the share of correct responses."""
    _check(correct)
    return sum(sum(c) / len(c) for c in correct) / len(correct)


def majority_vote(correct: Sequence[Sequence[bool]], answers: Sequence[Sequence[str]]) -> float:
    """Share of instances whose most frequent answer (as the task normalised it) is a correct one."""
    _check(correct)
    if [len(a) for a in answers] != [len(c) for c in correct]:
        raise ValueError("answers: expected one answer per judged response")
    won = 0
    for judged, given in zip(correct, answers, strict=True):
        counts = Counter(given)
        top = max(counts.values())
        winner = next(a for a in given if counts[a] == top)  # first of the most frequent
        won += judged[given.index(winner)]
    return won / len(correct)


def load_utility(spec: str, task_dir: Path) -> Utility:
    """The user's utility `<file>.py:<function>`, the file relative to the task folder, imported once per content
    of the file (a warm worker imports it again after the file changed).

    Raises:
        ValueError: naming `generate.utility`, when the file is missing or outside the folder, does not import, or
            has no such function.
    """
    file, _, name = spec.rpartition(":")
    path = (task_dir / file).resolve()
    if not path.is_relative_to(task_dir.resolve()):
        raise ValueError(f"generate.utility: {file} is outside the task folder {task_dir}; expected a file in it")
    if not path.is_file():
        raise ValueError(f"generate.utility: {task_dir / file} not found; expected <file>.py:<function> in {task_dir}")
    stat = path.stat()
    module = _import(str(path), stat.st_mtime_ns, stat.st_size, task_dir / file)
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"generate.utility: {task_dir / file} has no function {name!r}")
    return function


@functools.lru_cache(maxsize=16)
def _import(path: str, mtime_ns: int, size: int, shown: Path) -> ModuleType:
    """Imports a user's file as a module registered in sys.modules (dataclasses and pickling need it)."""
    name = f"_campaign_utility_{hashlib.sha256(f'{path}:{mtime_ns}:{size}'.encode()).hexdigest()[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's code: any error, named
        del sys.modules[name]
        raise ValueError(f"generate.utility: {shown} does not import: {type(err).__name__}: {err}") from None
    return module


def utility(
    name: str, correct: Sequence[Sequence[bool]], answers: Sequence[Sequence[str]], task_dir: Path | None = None
) -> float:
    """The utility `name` (one of UTILITIES, or a user's `<file>.py:<function>` in `task_dir`) of the judged
    responses."""
    if name == "majority_vote":
        return majority_vote(correct, answers)
    functions = {"success_rate": success_rate, "pass_at_n": pass_at_n, "mean_correct": mean_correct}
    if name in functions:
        return functions[name](correct)
    if task_dir is None or ":" not in name:
        raise ValueError(f"utility: got {name!r}; expected one of {', '.join(UTILITIES)} or <file>.py:<function>")
    _check(correct)
    value = load_utility(name, task_dir)([list(c) for c in correct], [list(a) for a in answers])
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value)):
        raise ValueError(f"generate.utility: {name} returned {value!r}; expected a finite number")
    return float(value)
