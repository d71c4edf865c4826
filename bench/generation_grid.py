"""Benchmark: a generation campaign against a grid search as llmsearch does it, over the same values.

    python bench/generation_grid.py --checkpoint campaigns/default/merged/t003   # after `campaign run`
    python bench/generation_grid.py                       # fine-tunes a model first (one quick LoRA trial)

(grid) scikit-learn's `GridSearchCV` over every combination of the values below, llmsearch's way: the model is an
estimator whose `fit` does nothing and whose `score` samples and scores the whole tuning data with the
configuration (`cv=[(all, all)]`: one "fold" that is all of it, llmsearch's `slice(None)`). Its `score` is the
generate stage's own function, so both searches sample, judge and count tokens the same way.
(ours) `campaign run` of a generation campaign whose space is the same values (categorical), the default
strategy (Latin-hypercube design, then TPE), a third of the grid's configurations as its trial budget.
Printed: configurations, tokens (prompts + responses, as each trial's metrics count them) and wall time of each;
the best score of each; the tokens and the trials ours spent until it first reached the grid's best; the ratio.
Goal (issue 10): our best >= the grid's best at <= 1/3 of its tokens.
The two ways differ by design (a search that spends a third of the grid's trials against the whole grid), so the
ratio is of the cost at an equal best, not of equal work. What both must compute alike is checked: the grid
samples with the campaign's seeds and its trials' torch threads, so every configuration ours evaluated must have
the same score and tokens in the grid; when one does not, the bench exits with status 1 naming ours' trial, the
configuration and both results, before it prints a ratio (bench/agree.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.agree import check_agree  # noqa: E402
from bench.generation_pruning import finetuned, run  # noqa: E402
from hpo.config import load_params  # noqa: E402
from hpo.layout import CampaignPaths  # noqa: E402
from hpo.record.records import read_trials  # noqa: E402

GRID: dict[str, list[Any]] = {
    "temperature": [0.5, 0.9, 1.3],
    "top_k": [10, 50],
    "n": [1, 4, 7],
    "max_new_tokens": [4, 8],
    "stop": ["task", "none"],
}


def grid_search(ws: Path, campaign: str) -> list[dict[str, Any]]:
    """Every configuration of GRID on all the tuning data through `GridSearchCV`; one record per configuration
    (its values, score, tokens and seconds) in the order the grid evaluated them."""
    import numpy as np
    from sklearn.base import BaseEstimator
    from sklearn.model_selection import GridSearchCV

    from hpo.cache import pin_threads
    from hpo.checkpoint import resolve_checkpoint
    from hpo.config import derive_seed
    from hpo.layout import CampaignPaths
    from hpo.record.records import read_trial
    from stages.generate import generate

    paths = CampaignPaths(campaign, ws)  # the campaign's prepared tasks, model, seeds: the same as ours
    params = load_params(paths.params)
    first = read_trial(paths, "t000")
    seeds = first["seeds"]  # derived from the campaign seed: every trial of ours records the same
    pin_threads(first.get("threads"))  # the torch threads ours' trials computed with
    checkpoint = resolve_checkpoint(paths.base_model)
    log: list[dict[str, Any]] = []

    class Generation(BaseEstimator):
        """llmsearch's shape: the generation settings are the estimator's parameters."""

        def __init__(self, temperature=0.0, top_k=None, n=1, max_new_tokens=8, stop="task") -> None:  # noqa: ANN001
            self.temperature, self.top_k, self.n, self.max_new_tokens, self.stop = (
                temperature,
                top_k,
                n,
                max_new_tokens,
                stop,
            )

        def fit(self, X: Any, y: Any = None) -> Generation:  # noqa: N803  (scikit-learn's names)
            return self

        def score(self, X: Any, y: Any = None) -> float:  # noqa: N803
            values = self.get_params()
            settings = params.trial_generate(values)
            began = time.perf_counter()
            metrics, _, _ = generate(
                checkpoint,
                params.eval,
                settings,
                paths.tasks,
                derive_seed(seeds["generate"], settings.generation_seed),
                seeds["eval"],
                ws,
            )
            log.append(
                {
                    **values,
                    "score": metrics["score"],
                    "tokens": metrics["cost"]["total_tokens"],
                    "seconds": time.perf_counter() - began,
                }
            )
            return float(metrics["score"])

    n_eval = params.data.n_eval
    everything = np.arange(n_eval)  # llmsearch's one "fold" of all the data, as indices (no slice in this sklearn)
    search = GridSearchCV(Generation(), GRID, cv=[(everything, everything)], refit=False, n_jobs=None)
    search.fit(everything)
    assert len(log) == len(search.cv_results_["params"])
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="a litgpt checkpoint (default: fine-tune one)")
    parser.add_argument("--trials", type=int, default=None, help="our trials (default: a third of the grid)")
    args = parser.parse_args()
    configurations = 1
    for values in GRID.values():
        configurations *= len(values)
    trials = args.trials or configurations // 3
    ws = Path(tempfile.mkdtemp(prefix="bench-grid-")) / "ws"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    checkpoint = str(args.checkpoint.resolve()) if args.checkpoint else finetuned(ws)

    raw = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    raw["campaign"].update({"name": "ours", "n_trials": trials, "n_init": 4, "sampler": "tpe", "baseline": False})
    raw["space"] = {name: {"type": "categorical", "choices": values} for name, values in GRID.items()}
    raw["model"] = {"checkpoint_dir": checkpoint}
    (ws / "ours.yaml").write_text(yaml.safe_dump(raw))
    began = time.perf_counter()
    run(ws, ws / "ours.yaml")
    ours_seconds = time.perf_counter() - began
    with (ws / "campaigns/ours/report/trials.csv").open() as f:
        ours = [r for r in csv.DictReader(f) if r["state"] == "complete" and r["trial"] != "untuned"]

    sys.path.insert(0, str(ws))
    import os

    os.chdir(ws)  # lm-eval reads the prepared tasks' data paths relative to the workspace
    began = time.perf_counter()
    grid = grid_search(ws, "ours")
    grid_seconds = time.perf_counter() - began

    # every configuration ours evaluated, with the same seeds, must have scored and cost the same in the grid
    recorded = read_trials(CampaignPaths("ours", ws))
    by_values = {tuple(r[k] for k in GRID): r for r in grid}
    same: dict[str, dict[str, Any]] = {"ours": {}, "grid": {}}
    for row in ours:
        values = tuple(recorded[row["trial"]]["params"][k] for k in GRID)
        name = f"{row['trial']} ({', '.join(f'{k} {v}' for k, v in zip(GRID, values, strict=True))})"
        metrics = json.loads((ws / "campaigns/ours/trials" / row["trial"] / "metrics.json").read_text())
        same["ours"][name] = (metrics["score"], metrics["cost"]["total_tokens"])
        if values in by_values:
            same["grid"][name] = (by_values[values]["score"], by_values[values]["tokens"])
    check_agree(same, "(score, tokens)", "a configuration ours evaluated, in the grid")
    print(f"the {len(ours)} configurations ours evaluated scored and cost the same in the grid")

    grid_best = max(grid, key=lambda r: r["score"])
    grid_tokens = sum(r["tokens"] for r in grid)
    ours_tokens = sum(int(r["gen_tokens"]) for r in ours)
    ours_best = max(float(r["score"]) for r in ours)
    spent, reached = 0, None
    for i, row in enumerate(ours, 1):
        spent += int(row["gen_tokens"])
        if float(row["score"]) >= grid_best["score"] - 1e-12:
            reached = (i, spent)
            break
    print(f"grid: {len(grid)} configurations x {raw['data']['n_eval']} instances")
    print(f"grid (GridSearchCV): {grid_tokens:>9} tokens, {grid_seconds:7.1f} s, best {grid_best['score']:.4f}")
    print("  best configuration: " + ", ".join(f"{k} {grid_best[k]}" for k in GRID))
    print(f"ours ({trials} trials): {ours_tokens:>9} tokens, {ours_seconds:7.1f} s, best {ours_best:.4f}")
    if reached:
        print(f"ours reached the grid's best at trial {reached[0]} after {reached[1]} tokens")
        print(f"tokens to reach the grid's best, ours/grid: {reached[1] / grid_tokens:.2f}")
    else:
        print("ours did not reach the grid's best")
    gap = ours_best - grid_best["score"]
    print(f"all tokens ours/grid {ours_tokens / grid_tokens:.2f}; best ours - grid {gap:+.4f}")


if __name__ == "__main__":
    main()
