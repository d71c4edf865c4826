"""EcoOptiGen's inference-budget rules (Wang, Liu and Awadallah 2023, "Cost-Effective Hyperparameter Optimization
for Large Language Model Generation Inference"; FLAML's `Completion.tune`), as pure bookkeeping a generation
campaign consults. FLAML's implementation is bound to the OpenAI 0.x API and deprecated, so the rules are written
down here from the paper and FLAML's description, each tested on hand-built histories (tests/test_ecooptigen.py).

The inference budget B.i is a target of tokens per instance (the prompt plus all n responses; a price per 1k
input and output tokens turns it into money). A configuration is *valid* when its average cost per instance on
the tuning data is within B.i.

- Rule 1 (Assumption 3.1: the cost grows with n and with max_new_tokens). Per region — the same model, prompt
  template and stop sequences — keep the largest n known valid and the smallest n known invalid at each
  max_new_tokens. A valid n stays valid at a smaller max_new_tokens, an invalid n stays invalid at a larger one.
  A configuration whose n is at least the smallest known invalid n at its max_new_tokens is pruned without any
  generation; one whose n is at most the largest known valid n needs no check.
- Rule 2 (growing subsets). Otherwise the configuration is evaluated on the first 1, 2, 4, … instances of the
  tuning data; after each subset the average cost of its responses per instance is compared with what B.i leaves
  after the prompts' average cost over all the tuning data (known before any generation; FLAML's
  `avg_input_tokens` and target output tokens): above it·(1 + margin) the configuration is invalid (stopped
  early), at most it·(1 − margin) valid (the rest of the check is skipped), in between the subset doubles.
  (Comparing whole instance costs instead let the first prompts' lengths decide: measured with
  `bench/generation_pruning.py`, a first prompt 24 % longer than the average pruned two configurations whose
  measured cost was within B.i, one of them the best feasible.) The margin, 0.1·sqrt(ρ/size) with
  ρ = 1 − size/total (the finite-population factor of a mean over a sample drawn without replacement: our reading
  of FLAML's 0.1·sqrt(ρ/size)), shrinks with the subset and is 0 on the whole data, where the average is exact.
- Rule 3 (reuse). When n grows from a known valid n, the responses already drawn are reused: response j of an
  instance is seeded by (campaign seed, generation seed, task, instance, j), not by n, so responses 0..n₀−1 of a
  configuration with n > n₀ are those of the same configuration with n₀ (`hpo.evaluation` keeps them per worker).

Every rule is decided here, and only here: the campaign asks rule 1 (`rule1`) before it records a trial, the LM
runs rule 2 (`check_on_growing_subsets`) as it samples, and the generate stage writes what a trial teaches rule 1
(`budget_record`), which `rule1` reads back from the trials recorded so far.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hpo.config import GenerateSection, Params

Verdict = Literal["valid", "invalid", "grow"]
MARGIN = 0.1


@dataclass
class RegionKnowledge:
    """What is known about one region (model, template, stop): per max_new_tokens, the largest valid n and the
    smallest invalid n."""

    valid: dict[int, int] = field(default_factory=dict)
    invalid: dict[int, int] = field(default_factory=dict)

    def max_valid_n(self, max_tokens: int) -> int:
        """The largest n known valid at `max_tokens` (valid at a larger max_tokens counts); 0 when none is."""
        return max((n for m, n in self.valid.items() if m >= max_tokens), default=0)

    def min_invalid_n(self, max_tokens: int) -> int | None:
        """The smallest n known invalid at `max_tokens` (invalid at a smaller max_tokens counts), or None."""
        return min((n for m, n in self.invalid.items() if m <= max_tokens), default=None)

    def learn(self, max_tokens: int, n: int, valid: bool) -> None:
        """Records the verdict on (max_tokens, n)."""
        if valid:
            self.valid[max_tokens] = max(n, self.valid.get(max_tokens, 0))
        else:
            self.invalid[max_tokens] = min(n, self.invalid.get(max_tokens, n))


@dataclass
class Knowledge:
    """Rule 1's bookkeeping over all regions of a campaign, rebuilt from the trials recorded so far."""

    regions: dict[Hashable, RegionKnowledge] = field(default_factory=dict)

    def region(self, key: Hashable) -> RegionKnowledge:
        return self.regions.setdefault(key, RegionKnowledge())

    def before(self, key: Hashable, max_tokens: int, n: int) -> Literal["prune", "valid", "check"]:
        """Rule 1 for a configuration about to run: `prune` it without generation, it is known `valid` (evaluate
        it, no budget check), or `check` it on growing subsets (rule 2)."""
        known = self.region(key)
        smallest_invalid = known.min_invalid_n(max_tokens)
        if smallest_invalid is not None and n >= smallest_invalid:
            return "prune"
        if n <= known.max_valid_n(max_tokens):
            return "valid"
        return "check"


def region(template: str, stop: str) -> tuple[str, str]:
    """A configuration's region in a campaign (one model): its prompt template and stop sequences by name."""
    return (template, stop)


def subset_sizes(total: int) -> list[int]:
    """Rule 2's subsets: the first 1, 2, 4, … instances, ending with all of them."""
    if total < 1:
        raise ValueError(f"total: got {total}; expected at least one tuning instance")
    sizes, size = [], 1
    while size < total:
        sizes.append(size)
        size *= 2
    return [*sizes, total]


def margin(size: int, total: int, coefficient: float = MARGIN) -> float:
    """Rule 2's relative margin after `size` of `total` instances: coefficient·sqrt((1 − size/total)/size)."""
    return coefficient * math.sqrt(max(0.0, 1 - size / total) / size)


def verdict(average_tokens: float, size: int, total: int, target: float, coefficient: float = MARGIN) -> Verdict:
    """Rule 2 after a subset: `invalid` above target·(1 + margin), `valid` at most target·(1 − margin), else
    `grow` (on the whole data the margin is 0 and the verdict is final)."""
    if target <= 0:
        raise ValueError(f"target: got {target}; expected a positive budget of tokens per instance")
    m = margin(size, total, coefficient)
    if average_tokens > target * (1 + m):
        return "invalid"
    if average_tokens <= target * (1 - m):
        return "valid"
    return "grow"


@dataclass(frozen=True)
class Check:
    """One step of rule 2: after `size` instances the average tokens per instance and the verdict."""

    size: int
    average_tokens: float
    margin: float
    verdict: Verdict


def budget_check(tokens_per_instance: list[float], target: float, coefficient: float = MARGIN) -> list[Check]:
    """Rule 2 over a configuration's tokens per instance in the tuning data's order: the checks made until the
    first verdict that is not `grow`. (A caller that generates as it goes stops generating there; given all
    the costs, this replays the same decisions.)"""
    total = len(tokens_per_instance)
    checks = []
    for size in subset_sizes(total):
        average = sum(tokens_per_instance[:size]) / size
        step = Check(
            size, average, margin(size, total, coefficient), verdict(average, size, total, target, coefficient)
        )
        checks.append(step)
        if step.verdict != "grow":
            break
    return checks


def instance_cost(prompt_tokens: int, response_tokens: list[int], prices: tuple[float, float] | None = None) -> float:
    """One instance's inference cost: its prompt once and all its responses (EcoOptiGen's per-call usage) — in
    tokens, or in money with `prices` per 1k input and output tokens."""
    if prices is None:
        return float(prompt_tokens + sum(response_tokens))
    return (prompt_tokens * prices[0] + sum(response_tokens) * prices[1]) / 1000


@dataclass(frozen=True)
class Budget:
    """EcoOptiGen's inference budget B.i for rule 2: the target cost per instance, in the LM's cost units (tokens,
    or money with `LitGPTLM`'s prices)."""

    target: float


def rule1(params: Params, values: dict[str, Any], records: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Rule 1 for a generation trial about to be recorded: `prune` (no generation), `valid` (no budget check) or
    `check` (rule 2 in the stage), with why.

    Args:
        params: the campaign's declaration.
        values: the trial's hyperparameters.
        records: what each trial recorded so far taught rule 1 (its metrics' `budget`, `budget_record`; None
            where it has none), iterated only when the decision needs it.

    Returns:
        The decision and its reason, or None when the campaign has no inference budget.
    """
    if not params.campaign.generates or params.generate.inference_budget is None:
        return None
    if params.campaign.trains:  # Assumption 3.1 holds per model, and each joint trial has its own
        return {
            "decision": "check",
            "reason": "a joint trial samples from its own fine-tuned model, of which "
            "nothing is known: checked on growing subsets (rule 2)",
        }
    knowledge = Knowledge()
    for record in records:
        if record and record["valid"] is not None:  # (None: stopped by the evaluation pruner before a verdict)
            knowledge.region(tuple(record["region"])).learn(record["max_new_tokens"], record["n"], record["valid"])
    settings = params.trial_generate(values)
    key = region(settings.template, settings.stop)
    decision = knowledge.before(key, settings.max_new_tokens, settings.n)
    known = knowledge.region(key)
    reasons = {
        "prune": f"pruned by EcoOptiGen's rule 1: n={settings.n} >= "
        f"{known.min_invalid_n(settings.max_new_tokens)}, "
        f"known over the inference budget at max_new_tokens <= {settings.max_new_tokens} (template "
        f"{settings.template}, stop {settings.stop})",
        "valid": f"n={settings.n} <= {known.max_valid_n(settings.max_new_tokens)}, known within the inference "
        f"budget at max_new_tokens >= {settings.max_new_tokens}: no budget check",
        "check": "no verdict known: checked on growing subsets (rule 2)",
    }
    return {"decision": decision, "reason": reasons[decision]}


def check_on_growing_subsets(
    total: int, budget: Budget, average_prompt_cost: float, sample: Callable[[int, int], list[float] | None]
) -> tuple[list[dict[str, Any]], int | None]:
    """Rule 2 while a configuration generates: the prompts' cost is known for every instance before any generation
    (their average, as FLAML's avg_input_tokens), so the subsets compare what the configuration decides — its
    responses — with what the budget leaves for them, not the first prompts' lengths.

    Args:
        total: the instances of the tuning data.
        budget: the inference budget B.i per instance.
        average_prompt_cost: the prompts' average cost over all `total` instances.
        sample: samples the instances from index `start` up to `stop` (`sample(start, stop)`) and returns the cost
            of each one's responses; called for the first 1, 2, 4, … instances in turn, and once for all the rest
            when a subset is clearly within the budget; None when something else stopped the evaluation (the
            evaluation pruner, `eval.pruner`): the checks end there, without a verdict of rule 2's.

    Returns:
        The checks made, as the trial's metrics record them, and the number of instances sampled when a subset
        was clearly over the budget (the rest are never sampled), else None.
    """
    left = budget.target - average_prompt_cost
    costs: list[float] = []
    checks: list[dict[str, Any]] = []
    for size in subset_sizes(total) if total else []:
        sampled = sample(len(costs), size)
        if sampled is None:
            return checks, None
        costs += sampled
        average = sum(costs[:size]) / size
        said = verdict(average, size, total, left) if left > 0 else "invalid"
        checks.append(
            {
                "size": size,
                "of": total,
                "average_response_cost": round(average, 6),
                "response_budget": round(left, 6),
                "average_prompt_cost": round(average_prompt_cost, 6),
                "margin": round(margin(size, total), 6),
                "verdict": said,
            }
        )
        if said == "invalid":
            return checks, size
        if said == "valid":
            sample(size, total)
            break
    return checks, None


def rule2_reason(check: Mapping[str, Any], inference_budget: float | None) -> str:
    """Why rule 2 pruned a trial, from its last check."""
    return (
        f"pruned by EcoOptiGen's rule 2: responses cost {check['average_response_cost']:.4g} per instance "
        f"after {check['size']} of {check['of']} instances, over the {check['response_budget']:.4g} that the "
        f"inference budget {inference_budget:g} leaves after the prompts' "
        f"{check['average_prompt_cost']:.4g} by more than the margin {check['margin']:.2%}"
    )


def budget_record(
    settings: GenerateSection, checks: list[dict[str, Any]], valid: bool | None, checked: bool
) -> dict[str, Any]:
    """What rule 1 learns from a trial (its region, max_new_tokens, n and whether it kept the budget) and how
    rule 2 decided: the `budget` of the trial's metrics, which `rule1` reads back."""
    return {
        "inference_budget": settings.inference_budget,
        "units": "money" if settings.price_per_1k else "tokens",
        "region": list(region(settings.template, settings.stop)),
        "max_new_tokens": settings.max_new_tokens,
        "n": settings.n,
        "valid": valid,
        "checked": checked,
        "checks": checks,
    }
