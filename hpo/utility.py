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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

UTILITIES = ("success_rate", "pass_at_n", "mean_correct", "majority_vote")


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


def utility(name: str, correct: Sequence[Sequence[bool]], answers: Sequence[Sequence[str]]) -> float:
    """The utility `name` (one of UTILITIES) of the judged responses."""
    if name == "majority_vote":
        return majority_vote(correct, answers)
    functions = {"success_rate": success_rate, "pass_at_n": pass_at_n, "mean_correct": mean_correct}
    if name not in functions:
        raise ValueError(f"utility: got {name!r}; expected one of {', '.join(UTILITIES)}")
    return functions[name](correct)
