"""Benchmark: what a trial costs through the campaign (P) against a naive loop of command lines (A) and a
hand-written single-process loop (B), on the SAME trials (baseline + Latin-hypercube points, fixed seeds).

    python bench/trial_overhead.py                    # runs of 4 and 8 trials, one worker each
    python bench/trial_overhead.py --sizes 4          # one run size only (no slope)

(P) `campaign run` on a fresh clone: Prefect flow, warm Dask worker, DVC records (dvc.lock, cache).
(A) what a user would type per trial: `litgpt finetune_lora --config …` (which also merges), then a scoring
    process (lm-eval's `simple_evaluate` through the project's litgpt `LM`, as `python -m stages.score` does).
(B) one Python process calling the stage functions (`train_lora`, `score` of the adapter) in a loop.
All three use the same prebuilt base model (built once, untimed) and the trials P recorded (params, seeds, torch
threads). A and B cannot prune or stop on a budget, so P runs with `campaign.pruner` and `campaign.stop_after`
removed from the declaration (the default campaign prunes): every trial trains its full `train.max_steps` in all
three ways. The three ways' scores must be identical, trial by trial: when they are not, the bench exits with
status 1 naming the trial and the differing scores, before it prints any ratio (bench/agree.py).
Printed per size: whole-run seconds per way, each trial's seconds and scores in the three ways, the whole-run
ratios P/A and P/B, the base-model loads per worker; with two sizes, the per-trial slope (the difference between
the 8- and 4-trial runs divided by 4, so fixed start-up costs and per-trial costs are seen apart) and last the
line `P/A <x>  P/B <y>` for the slopes. The 4- and 8-trial runs' Latin hypercubes are different points, but each
size's trials are the same in the three ways.
Goals (issue 9, 2-core CPU, one worker): slope P/B <= 1.15 and P/A <= 0.5; whole 4-trial run P/B <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from agree import check_agree  # bench/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from hpo.layout import CampaignPaths  # noqa: E402
from hpo.record.records import read_lineage, read_trials  # noqa: E402


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.perf_counter() - start, out.stdout + out.stderr


def build_base(work: Path, params: dict) -> Path:
    """The base model every way uses, built once with the base_model stage's function (untimed)."""
    from hpo.config import ModelSection
    from stages.base_model import base_model

    out = work / "base"
    if not (out / "lit_model.pth").is_file():
        model = ModelSection.model_validate(params["model"])
        base_model(model, ROOT / params["data"]["corpus"], out, model.tiny.seed)
    return out


def run_p(work: Path, params: dict, base: Path, n: int) -> tuple[float, Path]:
    ws = work / f"P{n}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    declared = {
        **params,
        "campaign": {**params["campaign"], "name": "bench", "n_trials": n - 1, "n_init": n - 1, "workers": 1},
        "model": {**params["model"], "checkpoint_dir": str(base)},
    }
    declared["campaign"].pop("scheduler", None)
    # what A and B cannot do: stop a trial early (pruner) or stop proposing on a budget; without them P trains
    # every trial it records to the end, as A and B do
    for key in ("pruner", "stop_after"):
        declared["campaign"].pop(key, None)
    (ws / "params.bench.yaml").write_text(yaml.safe_dump(declared))
    env = {**os.environ, "PREFECT_HOME": str(ws / ".prefect")}
    seconds, _ = timed([sys.executable, "-m", "flows.cli", "run", "--params", "params.bench.yaml"], ws, env)
    return seconds, ws / "campaigns" / "bench"


def trials_of(campaign: Path) -> dict[str, dict]:
    return read_trials(CampaignPaths(campaign.name, campaign.parent.parent))


def run_a(work: Path, campaign: Path, base: Path) -> tuple[float, dict[str, float], dict[str, float]]:
    """The naive loop: two processes per trial, each paying its imports and loading its model."""
    from hpo.config import load_params
    from stages.train_lora import finetune_config

    params = load_params(campaign / "params.yaml")
    litgpt = str(Path(sys.executable).parent / "litgpt")
    out_root = work / f"A-{campaign.parent.parent.name}"
    start = time.perf_counter()
    per_trial, scores = {}, {}
    for trial, record in trials_of(campaign).items():
        began = time.perf_counter()
        out = out_root / trial
        config = finetune_config(
            params.trial_train(record["params"]), base, campaign / "data", out, record["seeds"]["train"]
        )
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config))
        # the trial's recorded torch threads, as the campaign computes with them (torch reads OMP_NUM_THREADS)
        env = {**os.environ, "OMP_NUM_THREADS": str(record["threads"])}
        timed([litgpt, "finetune_lora", "--config", str(out / "config.yaml")], campaign.parent.parent, env)
        code = (
            "import json, sys; from pathlib import Path; from hpo.config import load_params; "
            "from stages.score import score; p = load_params(Path(sys.argv[1])); "
            "print('SCORE', json.dumps(score(Path(sys.argv[2]), p.eval, Path(sys.argv[3]), int(sys.argv[4]))['score']))"
        )
        _, text = timed(
            [
                sys.executable,
                "-c",
                code,
                str(campaign / "params.yaml"),
                str(out / "final"),
                str(campaign / "data/tasks"),
                str(record["seeds"]["eval"]),
            ],
            campaign.parent.parent,
            env,
        )
        scores[trial] = float(next(x for x in text.splitlines() if x.startswith("SCORE ")).split()[1])
        per_trial[trial] = time.perf_counter() - began
    return time.perf_counter() - start, per_trial, scores


def loop_b(campaign: Path, base: Path, out_root: Path) -> None:
    """The hand-written loop, in this process (run as `--loop-b`): the stage functions one after the other, from
    P's clone (the code P ran, whatever the working tree holds now)."""
    sys.path.insert(0, str(campaign.parent.parent))
    from hpo.cache import pin_threads
    from hpo.config import load_params
    from hpo.layout import TrialPaths
    from stages.score import score
    from stages.train_lora import train_lora

    params = load_params(campaign / "params.yaml")
    result = {}
    for trial, record in trials_of(campaign).items():
        began = time.perf_counter()
        pin_threads(record["threads"])
        out = TrialPaths(out_root / trial)
        out.dir.mkdir(parents=True, exist_ok=True)
        train_lora(params.trial_train(record["params"]), base, campaign / "data", out, record["seeds"]["train"])
        scored = score(base, params.eval, campaign / "data/tasks", record["seeds"]["eval"], adapter=out.adapter)
        result[trial] = {"seconds": time.perf_counter() - began, "score": scored["score"]}
    print("RESULT " + json.dumps(result))


def run_b(work: Path, campaign: Path, base: Path) -> tuple[float, dict[str, float], dict[str, float]]:
    out_root = work / f"B-{campaign.parent.parent.name}"
    seconds, text = timed(
        [sys.executable, __file__, "--loop-b", str(campaign), str(base), str(out_root)], campaign.parent.parent
    )
    line = next(x for x in text.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return seconds, {t: r["seconds"] for t, r in result.items()}, {t: r["score"] for t, r in result.items()}


def p_trials(campaign: Path) -> tuple[dict[str, float], dict[str, float | None], list[dict]]:
    lineage = read_lineage(CampaignPaths(campaign.name, campaign.parent.parent))
    pruned = [t for t, record in trials_of(campaign).items() if record.get("pruned")]
    if pruned:  # cannot happen with the pruner removed; A and B would train these trials in full
        raise SystemExit(f"FAIL: P pruned {', '.join(pruned)}: A and B train every trial in full")
    scores = {}
    for t in lineage:
        metrics = campaign / "trials" / t / "metrics.json"
        scores[t] = json.loads(metrics.read_text()).get("score") if metrics.is_file() else None
    return (
        {t: e["wall_seconds"] for t, e in lineage.items()},
        scores,
        [e.get("worker_loads", {}) for e in lineage.values()],
    )


def compare(work: Path, params: dict, sizes: list[int]) -> dict[tuple[str, int], float]:
    """Runs each size's trials the three ways, prints their times and scores, and stops (exit status 1) when the
    scores differ; the whole-run seconds per (way, size)."""
    base = build_base(work, params)
    whole: dict[tuple[str, int], float] = {}
    for n in sizes:
        p_total, campaign = run_p(work, params, base, n)
        p_each, p_scores, loads = p_trials(campaign)
        a_total, a_each, a_scores = run_a(work, campaign, base)
        b_total, b_each, b_scores = run_b(work, campaign, base)
        whole.update({("P", n): p_total, ("A", n): a_total, ("B", n): b_total})
        print(f"\n{n} trials: whole run P {p_total:.1f} s   A {a_total:.1f} s   B {b_total:.1f} s")
        print(f"{'trial':>9} {'P':>7} {'A':>7} {'B':>7}   score P / A / B")
        for trial in p_each:
            print(
                f"{trial:>9} {p_each[trial]:7.1f} {a_each.get(trial, float('nan')):7.1f} "
                f"{b_each.get(trial, float('nan')):7.1f}   "
                f"{p_scores[trial]} / {a_scores.get(trial)} / {b_scores.get(trial)}"
            )
        check_agree({"P": p_scores, "A": a_scores, "B": b_scores}, "score", f"{n} trials")
        print("scores identical in P, A and B: True")
        print(f"whole run P/A {p_total / a_total:.2f}  P/B {p_total / b_total:.2f}")
        print(f"base-model loads per worker (P, after each trial): {[entry.get('base_model') for entry in loads]}")
    return whole


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--loop-b":
        loop_b(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8], help="trials per run (baseline included)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / args.params).read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    try:
        whole = compare(work, params, args.sizes)
    except BaseException:
        print(f"work folder kept: {work}", file=sys.stderr)
        raise
    if len(args.sizes) >= 2:
        small, large = sorted(args.sizes)[:2]
        slope = {w: (whole[(w, large)] - whole[(w, small)]) / (large - small) for w in "PAB"}
        shown = "  ".join(f"{w} {slope[w]:.2f} s" for w in "PAB")
        print(f"\nper-trial slope ({small} → {large} trials): {shown}")
        print(
            f"fixed cost (whole {small}-trial run − {small} × slope): "
            + "  ".join(f"{w} {whole[(w, small)] - small * slope[w]:.1f} s" for w in "PAB")
        )
        print(f"P/A {slope['P'] / slope['A']:.2f}  P/B {slope['P'] / slope['B']:.2f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder: {work}")


if __name__ == "__main__":
    main()
