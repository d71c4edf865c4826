"""Benchmark: trials at a real size (SmolLM2-135M's architecture, params.smollm.yaml) through the campaign (P) and a
hand-written single-process loop (B), on the SAME trials, pruner off.

    python bench/real_size.py                 # 4 trials
    python bench/real_size.py --trials 2      # a quicker look

(P) `campaign run` on a fresh clone: Prefect flow, one warm Dask worker, DVC records (dvc.lock, cache). A trial
    trains its LoRA adapter and scores it on the base model merged in memory; the campaign merges only its best
    trial at the end (a DVC stage), so best.json points at a usable checkpoint.
(B) one Python process calling the stage functions in a loop: `train_lora`, then `score` of the adapter on the base
    model; then `merge_lora` of the best trial once, as P does. It imports what P's warm worker imports before its
    first trial (`hpo.trials.finetune.warm_up`) before it starts the clock.
Both use the same prebuilt base model (built once with the base_model stage's function, untimed) and the trials P
recorded (params, seeds, torch threads). Their scores must be identical trial by trial (bench/agree.py: exit 1
before any ratio otherwise).

Printed per trial and way: seconds by stage (train, evaluation, DVC record), the adapter's size, the disk the
trial added to the workspace and the DVC cache (every file under the trial's folder and every cache object of its
outputs, a hard-linked file counted once, as `du` does: the repository's cache type is `hardlink,symlink`), the
worker's peak resident memory after the trial; then the campaign-level merge of the best, the goals' inputs and
last the line `P/B <x>  disk/adapter <y>`.
Goals (issue 21, 2-core CPU, one worker): disk/adapter <= 1.05 (metrics and loss curves included), per-trial
P/B <= 1.10, worker RSS <= 1.3 x (base weights + one trial's model) and flat over the trials.
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
from trial_overhead import build_base, timed, trials_of

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from hpo.layout import CampaignPaths  # noqa: E402
from hpo.record.records import read_lineage  # noqa: E402

MIB = 2**20


def run_p(work: Path, params: dict, base: Path, n: int) -> tuple[float, Path]:
    """`campaign run` of n Latin-hypercube trials on a fresh clone, without pruner or budget."""
    ws = work / "P"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    declared = {
        **params,
        "campaign": {**params["campaign"], "name": "bench", "n_trials": n, "n_init": n, "workers": 1},
        "model": {**params["model"], "checkpoint_dir": str(base)},
    }
    for key in ("pruner", "stop_after", "scheduler"):
        declared["campaign"].pop(key, None)
    (ws / "params.bench.yaml").write_text(yaml.safe_dump(declared))
    env = {**os.environ, "PREFECT_HOME": str(ws / ".prefect")}
    seconds, _ = timed([sys.executable, "-m", "flows.cli", "run", "--params", "params.bench.yaml"], ws, env)
    return seconds, ws / "campaigns" / "bench"


def du(paths: list[Path]) -> int:
    """Bytes of the files under `paths`, each inode once (a hard link into DVC's cache is one file)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in files:
            stat = path.stat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def cache_objects(ws: Path, lock_file: Path, stages: list[str]) -> list[Path]:
    """The DVC cache files of the stages' outputs (each file and each folder's `.dir` listing), as `lock_file` (the
    root dvc.lock, or a trial's own) records them."""
    lock = yaml.safe_load(lock_file.read_text())["stages"]
    found = []
    for stage in stages:
        for out in lock.get(stage, {}).get("outs", []):
            md5 = out["md5"]
            found.append(ws / ".dvc/cache/files/md5" / md5[:2] / md5[2:])
            if md5.endswith(".dir"):
                listing = json.loads(found[-1].read_text())
                found += [ws / ".dvc/cache/files/md5" / e["md5"][:2] / e["md5"][2:] for e in listing]
    return found


def p_trials(ws: Path, campaign: Path) -> dict[str, dict]:
    lineage = read_lineage(CampaignPaths(campaign.name, campaign.parent.parent))
    rows = {}
    for trial, record in trials_of(campaign).items():
        if record.get("pruned"):
            raise SystemExit(f"FAIL: P pruned {trial}: B trains every trial in full")
        entry, out = lineage[trial], campaign / "trials" / trial
        stages = entry.get("stage_seconds") or {}
        rows[trial] = {
            "wall": entry["wall_seconds"],
            "train": stages.get("train_lora"),
            "eval": stages.get("score"),
            "record": stages.get("dvc_commit"),
            "adapter": (out / "adapter/lit_model.pth.lora").stat().st_size,
            "disk": du(
                [p for p in out.iterdir() if p.name != "merged"]
                + cache_objects(ws, out / "dvc.lock", ["train_lora", "score"])
            ),
            "rss": entry.get("worker_peak_rss_mb"),
            "score": json.loads((out / "metrics.json").read_text())["score"],
        }
    return rows


def loop_b(campaign: Path, base: Path, out_root: Path) -> None:
    """The hand-written loop, in this process (run as `--loop-b`), with the code of P's clone."""
    sys.path.insert(0, str(campaign.parent.parent))
    from hpo.cache import pin_threads
    from hpo.config import load_params
    from hpo.layout import TrialPaths
    from hpo.trials.finetune import warm_up
    from hpo.trials.worker import peak_rss_mb
    from stages.merge_lora import merge_lora
    from stages.score import score
    from stages.train_lora import train_lora

    warm_up()  # the imports P's worker makes before its first trial (litgpt's LoRA script, lm-eval), untimed
    params = load_params(campaign / "params.yaml")
    result: dict[str, dict] = {}
    for trial, record in trials_of(campaign).items():
        pin_threads(record["threads"])
        out = TrialPaths(out_root / trial)
        out.dir.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        train_lora(params.trial_train(record["params"]), base, campaign / "data", out, record["seeds"]["train"])
        trained = time.perf_counter()
        scored = score(base, params.eval, campaign / "data/tasks", record["seeds"]["eval"], adapter=out.adapter)
        done = time.perf_counter()
        result[trial] = {
            "wall": done - began,
            "train": trained - began,
            "eval": done - trained,
            "record": 0.0,
            "adapter": (out.adapter / "lit_model.pth.lora").stat().st_size,
            "disk": du([out.dir]),
            "rss": peak_rss_mb(),
            "score": scored["score"],
        }
    best = max(result, key=lambda t: result[t]["score"])
    began = time.perf_counter()
    merge_lora(TrialPaths(out_root / best).adapter, base, TrialPaths(out_root / best).merged)
    print("MERGE " + json.dumps({"trial": best, "seconds": time.perf_counter() - began}))
    print("RESULT " + json.dumps(result))


def run_b(work: Path, campaign: Path, base: Path) -> tuple[dict[str, dict], dict]:
    out_root = work / "B"
    _, text = timed(
        [sys.executable, __file__, "--loop-b", str(campaign), str(base), str(out_root)], campaign.parent.parent
    )
    tagged = [x.split(" ", 1) for x in text.splitlines() if x.startswith(("RESULT ", "MERGE "))]
    lines = {tag: json.loads(value) for tag, value in tagged}
    return lines["RESULT"], lines["MERGE"]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--loop-b":
        loop_b(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--params", default="params.smollm.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--base", type=Path, help="a base model built by an earlier run (its work folder's base/)")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / args.params).read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-real-size-"))
    try:
        base = args.base.resolve() if args.base else build_base(work, params)
        p_total, campaign = run_p(work, params, base, args.trials)
        ws = campaign.parent.parent
        p = p_trials(ws, campaign)
        b, b_merge = run_b(work, campaign, base)
    except BaseException:
        print(f"work folder kept: {work}", file=sys.stderr)
        raise
    check_agree({"P": {t: r["score"] for t, r in p.items()}, "B": {t: r["score"] for t, r in b.items()}})

    weights = (base / "lit_model.pth").stat().st_size
    print(f"base model: {weights / MIB:.0f} MiB of weights ({base})   whole P run {p_total:.1f} s")
    print(
        f"{'trial':>6} {'way':>3} {'wall s':>7} {'train':>6} {'eval':>6} {'record':>6} "
        f"{'adapter MiB':>11} {'disk MiB':>8} {'peak RSS MiB':>12}  score"
    )
    for trial in p:
        for way, rows in (("P", p), ("B", b)):
            r = rows[trial]
            print(
                f"{trial:>6} {way:>3} {r['wall']:7.1f} {r['train']:6.1f} {r['eval']:6.1f} {r['record'] or 0:6.1f} "
                f"{r['adapter'] / MIB:11.2f} {r['disk'] / MIB:8.2f} {r['rss'] or float('nan'):12.0f}  {r['score']}"
            )
    summary = json.loads((campaign / "report/best.json").read_text())
    best = summary["best"]["trial"]
    merged = campaign / "trials" / best / "merged"
    merged_disk = du([merged, *cache_objects(ws, ws / "dvc.lock", [f"merge_lora@bench-{best}"])])
    print(
        f"campaign end: best {best} merged once (B: {b_merge['seconds']:.1f} s), {merged_disk / MIB:.0f} MiB "
        f"in workspace + cache (one checkpoint per campaign, not per trial)"
    )
    rss = [r["rss"] for r in p.values() if r["rss"]]
    goal = 1.3 * 2 * weights / MIB
    print(f"worker peak RSS over the trials (MiB): {rss}; 1.3 x (base weights + one trial's model) = {goal:.0f} MiB")
    p_mean = sum(r["wall"] for r in p.values()) / len(p)
    b_mean = sum(r["wall"] for r in b.values()) / len(b)
    disk = sum(r["disk"] for r in p.values()) / sum(r["adapter"] for r in p.values())
    print(f"per-trial mean: P {p_mean:.1f} s  B {b_mean:.1f} s")
    print(f"P/B {p_mean / b_mean:.2f}  disk/adapter {disk:.3f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
