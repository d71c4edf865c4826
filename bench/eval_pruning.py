"""Benchmark: instance-wise pruning of evaluation (`eval.pruner: wilcoxon`) in the shipped generation campaign and
the default fine-tuning campaign, against no pruning and EcoOptiGen's inference budget.

    python bench/eval_pruning.py                    # both campaigns, 12 trials each (~30 min on 2 cores)
    python bench/eval_pruning.py --trials 8 --skip-finetune
    python bench/eval_pruning.py --keep; python bench/eval_pruning.py --workspace <kept> --chunk 5   # other options

Every way is `campaign run` in one fresh clone, same seed, with the random sampler (as bench/generation_pruning.py:
every way proposes the same configurations in the same order, so what differs is only what pruning stopped):
- fine-tuning (`params.yaml`, its ASHA pruner off in both ways so every trial trains the same): `none` scores every
  trial on all `data.n_eval` instances; `wilcoxon` scores them in the campaign's order, 10 at a time, and stops a
  trial once Optuna's WilcoxonPruner finds it worse than the best so far on the same instances.
- generation (`params.generation.yaml`, on the best model of the fine-tuning `none` way): `none`; `budget`
  (EcoOptiGen's B.i = `--budget` tokens per instance, rules 1-3); `wilcoxon`; `both`.
Printed per way: trials pruned, instances evaluated, tokens (generation: prompts + responses sampled; fine-tuning:
none, scoring reads log-likelihoods), seconds of the scoring stages, and the best score (generation: the best
feasible one, cost per instance within B.i, as an unpruned search under the same constraint would report).
Goals (issue 19): generation with both >= 80 % fewer tokens than none with the same best (within 1 point);
fine-tuning >= 40 % fewer evaluated instances with the same best. Before any figure, the bench checks that the ways
computed alike what they must (bench/agree.py): the same configurations and seeds in every way, and a trial that
two ways evaluated to the end has the same score in both; otherwise it exits with status 1.
Last line: `generation: <x>% fewer tokens, best <±y> pts; finetune: <z>% fewer instances, best <±w> pts`.
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
from agree import check_agree  # bench/ is the script's folder, first on sys.path
from generation_pruning import run as campaign_run

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hpo.layout import CampaignPaths  # noqa: E402
from hpo.record.records import read_lineage, read_trials  # noqa: E402

WILCOXON = {"name": "wilcoxon", "p_threshold": 0.1, "n_startup_steps": 2, "chunk": 10}


def run(ws: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """Runs the declared campaign in `ws`; its trials table rows, records and per-trial stage seconds."""
    name = raw["campaign"]["name"]
    began = time.perf_counter()
    if not (ws / f"campaigns/{name}/report/trials.csv").is_file():  # (else: run by an earlier bench, read it)
        (ws / f"{name}.yaml").write_text(yaml.safe_dump(raw))
        campaign_run(ws, ws / f"{name}.yaml")
    with (ws / f"campaigns/{name}/report/trials.csv").open() as f:
        rows = {r["trial"]: r for r in csv.DictReader(f) if r["trial"] != "untuned"}  # the trials, not the reference
    paths = CampaignPaths(name, ws)
    lineage = read_lineage(paths)
    stage = "generate" if raw["campaign"].get("kind") == "generate" else "score"
    seconds = sum(float((lineage.get(t) or {}).get("stage_seconds", {}).get(stage) or 0) for t in rows)
    metrics = {t: json.loads(paths.trial(t).metrics.read_text()) for t in rows}
    print(f"  {name}: {time.perf_counter() - began:.0f} s", flush=True)
    return {"rows": rows, "records": read_trials(paths), "metrics": metrics, "seconds": seconds}


def summary(result: dict[str, Any], n_eval: int, budget: float | None) -> dict[str, Any]:
    """Per way: trials pruned, instances evaluated, tokens, scoring seconds, best (feasible) score."""
    rows, metrics = result["rows"], result["metrics"]
    searched = [t for t in rows if t != "baseline"]

    def evaluated(t: str) -> int:
        m = metrics[t]
        if "evaluation" in m:
            return int(m["evaluation"]["instances"])
        if "cost" in m:  # a generation trial: the instances it sampled
            return int(m["cost"]["instances"])
        return n_eval if m.get("state") == "complete" else 0

    def feasible(t: str) -> bool:
        row = rows[t]
        if row["state"] != "complete":
            return False
        return budget is None or "gen_tokens" not in row or int(row["gen_tokens"]) / n_eval <= budget

    scores = [float(rows[t]["score"]) for t in searched if feasible(t)]
    return {
        "pruned": sum(rows[t]["state"] == "pruned" for t in searched),
        "instances": sum(evaluated(t) for t in searched),
        "tokens": sum(int(rows[t].get("gen_tokens") or 0) for t in searched),
        "seconds": result["seconds"],
        "best": max(scores, default=float("nan")),
    }


def compare(results: dict[str, dict[str, Any]], what: str) -> None:
    """The checks before any figure: same configurations and seeds; same score where two ways finished a trial."""
    check_agree(
        {k: {t: (r["params"], r["seeds"]) for t, r in v["records"].items()} for k, v in results.items()},
        "(configuration, seeds)",
        f"the random sampler proposes the same in every {what} way",
    )
    complete = {k: {t for t, r in v["rows"].items() if r["state"] == "complete"} for k, v in results.items()}
    everywhere = set.intersection(*complete.values())
    check_agree(
        {k: {t: v["rows"][t]["score"] for t in sorted(everywhere)} for k, v in results.items()},
        "score",
        f"a trial every {what} way evaluated to the end",
    )


def table(title: str, sums: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'way':<10} {'pruned':>6} {'instances':>9} {'tokens':>9} {'seconds':>8} {'best':>8}")
    for way, s in sums.items():
        print(f"{way:<10} {s['pruned']:>6} {s['instances']:>9} {s['tokens']:>9} {s['seconds']:>8.1f} {s['best']:>8.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--budget", type=float, default=60.0, help="B.i: tokens per instance (generation)")
    parser.add_argument("--skip-finetune", action="store_true", help="generation only (on a quick fine-tuned model)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    parser.add_argument("--chunk", type=int, default=WILCOXON["chunk"], help="eval.pruner.chunk")
    parser.add_argument("--p-threshold", type=float, default=WILCOXON["p_threshold"], help="eval.pruner.p_threshold")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="a workspace an earlier run kept: campaigns already there are read, not run again (generation ways "
        "with other pruner options are new campaigns, named by them)",
    )
    parser.add_argument("--tag", default="", help="a suffix for the generation ways' campaigns: run them again")
    args = parser.parse_args()
    WILCOXON.update({"chunk": args.chunk, "p_threshold": args.p_threshold})
    if args.workspace is not None:
        ws = args.workspace.resolve()
    else:
        ws = Path(tempfile.mkdtemp(prefix="bench-eval-pruning-")) / "ws"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    print(f"workspace {ws}", flush=True)
    tag = (
        "" if (args.chunk, args.p_threshold) == (10, 0.1) else f"_c{args.chunk}_p{args.p_threshold:g}".replace(".", "")
    )
    plain = {"n_trials": args.trials, "n_init": 0, "sampler": "random", "baseline": False}

    finetune: dict[str, dict[str, Any]] = {}
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    n_eval_ft = base["data"]["n_eval"]
    ways_ft = {"none": None, "wilcoxon": WILCOXON}
    if args.skip_finetune:
        ways_ft = {"none": None}
        plain_ft = {**plain, "n_trials": 1}
    else:
        plain_ft = plain
    for way, pruner in ways_ft.items():
        raw = json.loads(json.dumps(base))
        raw["campaign"].update({**plain_ft, "name": f"ft_{way}", "pruner": None})
        raw["eval"]["pruner"] = pruner
        finetune[way] = run(ws, raw)

    gen_base = yaml.safe_load((ROOT / "params.generation.yaml").read_text())
    n_eval_gen = gen_base["data"]["n_eval"]
    generation: dict[str, dict[str, Any]] = {}
    ways_gen = {"none": (None, None), "budget": (args.budget, None), "wilcoxon": (None, WILCOXON)}
    ways_gen["both"] = (args.budget, WILCOXON)
    for way, (budget, pruner) in ways_gen.items():
        raw = json.loads(json.dumps(gen_base))
        raw["campaign"].update({**plain, "name": f"gen_{way}{tag if pruner else ''}{args.tag}"})
        raw["model"] = {"trial": "ft_none@best"}
        raw["generate"]["inference_budget"] = budget
        raw["eval"]["pruner"] = pruner
        generation[way] = run(ws, raw)

    if len(finetune) > 1:
        compare(finetune, "fine-tuning")
    compare(generation, "generation")
    sums_ft = {k: summary(v, n_eval_ft, None) for k, v in finetune.items()}
    sums_gen = {k: summary(v, n_eval_gen, args.budget) for k, v in generation.items()}
    print(f"\n{args.trials} random configurations per way, same seed; B.i = {args.budget:g} tokens per instance")
    if len(finetune) > 1:
        table(f"fine-tuning (params.yaml, {n_eval_ft} instances per trial; campaign.pruner off)", sums_ft)
    table(f"generation (params.generation.yaml, {n_eval_gen} instances per trial; best feasible within B.i)", sums_gen)
    g = 1 - sums_gen["both"]["tokens"] / sums_gen["none"]["tokens"]
    dg = 100 * (sums_gen["both"]["best"] - sums_gen["none"]["best"])
    line = f"generation: {g:.0%} fewer tokens, best {dg:+.1f} pts"
    if len(finetune) > 1:
        f = 1 - sums_ft["wilcoxon"]["instances"] / sums_ft["none"]["instances"]
        df = 100 * (sums_ft["wilcoxon"]["best"] - sums_ft["none"]["best"])
        line += f"; finetune: {f:.0%} fewer instances, best {df:+.1f} pts"
    print(line)
    if not args.keep:
        import shutil

        shutil.rmtree(ws.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
