"""The check every benchmark that prints a ratio between ways runs first: the ways computed the same thing.

A ratio of times (or tokens) between two ways of doing a computation says something only if both ways did the same
work: the same trials, seeds, budgets, no pruning in one way that another cannot do. Such a bench collects each
way's results per item (trial, row, configuration) and calls `check_agree`; when any item's results differ, or an
item is missing from a way, the bench stops with a non-zero exit and a message naming the item and the values,
before it prints a ratio. Results are compared exactly (`==`): on CPU the same seed gives bit-identical metrics
(docs/design.md#determinism), so any difference is a difference in the work, not noise.

Benches whose ways differ by design (pruning against no pruning, a search against a grid) do not print a ratio of
equal work but the cost at an equal best; they use `check_agree` only on what both ways must still compute alike
(the same trial with the same settings and seeds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class WaysDiffer(SystemExit):
    """Raised when ways that must compute the same thing did not: exits with status 1 and the message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def disagreements(results: Mapping[str, Mapping[str, Any]], what: str = "score") -> list[str]:
    """One line per item whose results are not the same in every way (or that a way lacks), first way as reference.

    Args:
        results: way name -> {item (e.g. trial id) -> its result (score, token ids, …)}.
        what: the name of the result, for the message.
    """
    ways = list(results)
    if len(ways) < 2:
        return []
    items: list[str] = []
    for way in ways:
        items.extend(item for item in results[way] if item not in items)
    lines = []
    for item in items:
        missing = [way for way in ways if item not in results[way]]
        if missing:
            present = ", ".join(f"{way} {results[way][item]!r}" for way in ways if way not in missing)
            lines.append(f"{item}: no {what} in {', '.join(missing)} (present in {present})")
            continue
        reference = ways[0]
        for way in ways[1:]:
            if results[way][item] != results[reference][item]:
                lines.append(
                    f"{item}: {what} differs: {reference} {results[reference][item]!r} != {way} {results[way][item]!r}"
                )
    return lines


def check_agree(results: Mapping[str, Mapping[str, Any]], what: str = "score", context: str = "") -> None:
    """Raises `WaysDiffer` (exit status 1) naming every item whose results differ between ways; else returns.

    Args:
        results: way name -> {item -> result}; every way must hold the same items with equal results.
        what: the name of the result, for the message.
        context: what was compared (a run size, a setting), for the message.
    """
    lines = disagreements(results, what)
    if lines:
        where = f" ({context})" if context else ""
        raise WaysDiffer(
            f"FAIL: the ways {', '.join(results)} did not compute the same thing{where}, so no ratio between them is "
            f"printed:\n  " + "\n  ".join(lines)
        )
