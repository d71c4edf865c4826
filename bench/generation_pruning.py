"""Benchmark: EcoOptiGen's pruning on vs off in a generation campaign, same seed, same configurations, same budget.

    python bench/generation_pruning.py --checkpoint campaigns/default/merged/t003   # after `campaign run`
    python bench/generation_pruning.py                       # fine-tunes a model first (one quick LoRA trial)

Both runs are `campaign run` of `params.generation.yaml` in one fresh clone, with the random sampler (so both
evaluate the same configurations in the same order) and the same inference budget B.i per instance:
(on) `generate.inference_budget` set: rules 1-3 prune configurations over B.i, most after a few instances;
(off) no inference budget: every configuration is evaluated on all instances, and those whose measured cost per
instance exceeds B.i are discarded afterwards, as an unpruned search under the same constraint would.
Printed: tokens each run sampled (prompts + responses), the best feasible score each found, the ratio of tokens,
and how many trials rule 1 and rule 2 pruned. Goal (issue 10): >= 50 % fewer tokens at an equal best.
The runs differ by design (one prunes), so the ratio is of the cost at an equal best, not of equal work. What they
must do alike is checked: every trial has the same configuration in both runs, and a trial that both ran to the
end has the same score and tokens in both (same seeds: the same responses); when either does not hold, the bench
exits with status 1 naming the trial and both values, before it prints the ratio (bench/agree.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from agree import check_agree  # bench/ is the script's folder, first on sys.path

from hpo.layout import CampaignPaths
from hpo.record.records import read_trials

ROOT = Path(__file__).resolve().parent.parent


def run(ws: Path, params: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(ws / ".prefect")}
    out = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--params", params.name],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"campaign run --params {params.name} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")


def finetuned(ws: Path) -> str:
    """One quick LoRA trial in a region where the tiny model learns to answer (tests/test_generation_campaign)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["campaign"].update({"name": "ft", "n_trials": 1, "n_init": 1, "baseline": False})
    raw["space"] = {
        "learning_rate": {"type": "float", "low": 0.015, "high": 0.02, "log": True},
        "lora_r": {"type": "int", "low": 24, "high": 32},
    }
    raw["train"].update({"max_steps": 120, "lora_dropout": 0.0, "weight_decay": 0.001})
    (ws / "ft.yaml").write_text(yaml.safe_dump(raw))
    run(ws, ws / "ft.yaml")
    return "campaigns/ft/merged/t000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="a litgpt checkpoint (default: fine-tune one)")
    parser.add_argument("--budget", type=float, default=60.0, help="B.i: tokens per instance")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="bench-pruning-")) / "ws"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    checkpoint = str(args.checkpoint.resolve()) if args.checkpoint else finetuned(ws)
    base = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    tables, configurations = {}, {}
    for name, budget in (("on", args.budget), ("off", None)):
        raw = json.loads(json.dumps(base))
        raw["campaign"].update({"name": f"prune_{name}", "n_trials": args.trials, "n_init": 0, "sampler": "random"})
        raw["model"] = {"checkpoint_dir": checkpoint}
        raw["generate"]["inference_budget"] = budget
        path = ws / f"prune_{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        run(ws, path)
        with (ws / f"campaigns/prune_{name}/report/trials.csv").open() as f:
            tables[name] = [r for r in csv.DictReader(f) if r["trial"] != "untuned"]  # the trials, not the reference
        records = read_trials(CampaignPaths(f"prune_{name}", ws))
        configurations[name] = {t: (r["params"], r["seeds"]) for t, r in records.items()}
    n_eval = base["data"]["n_eval"]
    check_agree(configurations, "(configuration, seeds)", "the random sampler proposes the same in both runs")
    done = {k: {r["trial"]: r for r in rows if r["state"] == "complete"} for k, rows in tables.items()}
    both = [t for t in done["on"] if t in done["off"]]
    check_agree(
        {k: {t: (done[k][t]["score"], done[k][t]["gen_tokens"]) for t in both} for k in done},
        "(score, gen_tokens)",
        "a configuration both runs sampled on every instance",
    )
    print(f"same configurations in both runs; {len(both)} trials run to the end in both, same scores and tokens")

    def feasible(row: dict) -> bool:
        return row["state"] == "complete" and int(row["gen_tokens"]) / n_eval <= args.budget

    spent = {k: sum(int(r["gen_tokens"]) for r in rows) for k, rows in tables.items()}
    best = {
        k: max((float(r["score"]) for r in rows if feasible(r) and r["baseline"] != "True"), default=None)
        for k, rows in tables.items()
    }
    rules = [r["reason"].split(":")[0] for r in tables["on"] if r["state"] == "pruned"]
    print(
        f"{args.trials} random configurations + baseline, B.i = {args.budget:g} tokens per instance, {n_eval} instances"
    )
    for k in ("on", "off"):
        print(f"pruning {k:<3}: {spent[k]:>8} tokens sampled, best feasible score {best[k]}")
    print(
        f"rule 1 pruned {sum('rule 1' in r for r in rules)}, rule 2 pruned {sum('rule 2' in r for r in rules)}; "
        f"infeasible without pruning: {sum(not feasible(r) for r in tables['off'])}"
    )
    print(
        f"tokens on/off {spent['on'] / spent['off']:.2f} ({1 - spent['on'] / spent['off']:.0%} fewer); "
        f"best equal: {best['on'] == best['off']}"
    )


if __name__ == "__main__":
    main()
