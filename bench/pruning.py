"""Benchmark: the default fine-tuning campaign with and without multi-fidelity pruning (`campaign.pruner`).

    python bench/pruning.py                           # off, median, asha (~25 min on 2 cores)
    python bench/pruning.py --pruners off median      # any of: off median percentile asha hyperband

Each run is `campaign run` of `params.yaml` in one fresh clone — same seed, same number of trials, the pruner the
only difference (its options at their defaults; percentile keeps the best 50 %). Printed per run: trials pruned,
the optimizer steps and training tokens the searched trials trained (the baseline, never pruned, left out), the
best score, and against the run without pruning the share of training saved and the best's difference in
accuracy points. Goal (issue 11): >= 50 % less training compute with the best within 1 point.
Compute is counted in steps and tokens, not seconds: the figures do not depend on what else the machine runs.
The runs differ by design (a pruner stops trials, and TPE then learns from other results and proposes other
points), so the ratio is of the cost at an equal best, not of equal work. What they must compute alike is checked:
a trial that two runs both trained to the end with the same hyperparameters and seeds (the baseline, the design
points a pruner let through) must have the same score in both; when it does not, the bench exits with status 1
naming the trial and both scores, before it prints the comparison (bench/agree.py).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
from pathlib import Path

import yaml
from agree import check_agree  # bench/ is the script's folder, first on sys.path
from generation_pruning import run as campaign_run

from hpo.layout import CampaignPaths
from hpo.record.records import read_trials

ROOT = Path(__file__).resolve().parent.parent
PRUNERS = {
    "off": None,
    "median": {"name": "median"},
    "percentile": {"name": "percentile", "percentile": 50.0},
    "asha": {"name": "asha"},
    "hyperband": {"name": "hyperband"},
}


def run(ws: Path, params: Path) -> tuple[list[dict[str, str]], dict[str, tuple[str, float]]]:
    """`campaign run` of `params` in the clone (the generation benchmark's helper); the searched trials' rows, and
    per trial that trained to the end (the baseline included) its recorded decision (hyperparameters, seeds,
    threads) and score."""
    campaign_run(ws, params)
    name = yaml.safe_load(params.read_text())["campaign"]["name"]
    with (ws / f"campaigns/{name}/report/trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    records = read_trials(CampaignPaths(name, ws))
    complete = {
        r["trial"]: (
            yaml.safe_dump({k: v for k, v in records[r["trial"]].items() if k in ("params", "seeds", "threads")}),
            float(r["score"]),
        )
        for r in rows
        if r["state"] == "complete" and r["score"] and r["trial"] in records
    }
    return [r for r in rows if r["baseline"] != "True"], complete


def check_same_trials(complete: dict[str, dict[str, tuple[str, float]]]) -> int:
    """Each run against the first: the trials both trained to the end from the same recorded decision must have the
    same score (exit status 1 naming the trial otherwise); how many such trials were compared."""
    if len(complete) < 2:
        return 0
    first, *others = complete
    compared = 0
    for other in others:
        both = [t for t in complete[first] if t in complete[other] and complete[first][t][0] == complete[other][t][0]]
        check_agree(
            {run: {t: complete[run][t][1] for t in both} for run in (first, other)},
            "score",
            "a trial trained to the end with the same settings in both runs",
        )
        compared += len(both)
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruners", nargs="*", default=["off", "median", "asha"], choices=list(PRUNERS))
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="bench-lora-pruning-")) / "ws"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    base = yaml.safe_load(args.params.read_text())
    results, complete = {}, {}
    for name in args.pruners:
        raw = yaml.safe_load(yaml.safe_dump(base))
        raw["campaign"]["name"] = f"pruning_{name}"
        raw["campaign"].pop("pruner", None)
        if PRUNERS[name]:
            raw["campaign"]["pruner"] = PRUNERS[name]
        path = ws / f"pruning_{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        rows, complete[name] = run(ws, path)
        results[name] = {
            "pruned": sum(r["state"] == "pruned" for r in rows),
            "steps": sum(
                int(r.get("train_steps") or base["train"]["max_steps"]) for r in rows
            ),  # no column: none pruned
            "tokens": sum(int(r["train_tokens"] or 0) for r in rows),
            "best": max((float(r["score"]) for r in rows if r["state"] == "complete" and r["score"]), default=None),
        }
        print(f"{name}: {results[name]}", flush=True)
    compared = check_same_trials(complete)
    print(f"trials trained to the end from the same decision in two runs: {compared}, scores identical")
    c = base["campaign"]
    print(
        f"\n{c['n_trials']} trials ({c['n_init']} design points, {c['sampler']}), seed {c['seed']}, "
        f"{base['train']['max_steps']} steps each, validation every {base['train']['eval_interval']}"
    )
    off = results.get("off")
    for name, r in results.items():
        line = f"{name:<10} pruned {r['pruned']:>2}  steps {r['steps']:>5}  tokens {r['tokens']:>8}  best {r['best']}"
        if off and name != "off" and r["best"] is not None and off["best"] is not None:
            line += (
                f"  | {1 - r['steps'] / off['steps']:.0%} fewer steps, {1 - r['tokens'] / off['tokens']:.0%} fewer "
                f"tokens, best {100 * (r['best'] - off['best']):+.1f} points"
            )
        print(line)


if __name__ == "__main__":
    main()
