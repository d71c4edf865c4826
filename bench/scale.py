"""Benchmark (issue 20): what a campaign's bookkeeping costs per trial as the campaign grows, and how long the
whole-workspace commands take at the end.

    python bench/scale.py                          # a generation campaign of 1,000 short trials
    python bench/scale.py --trials 120             # a quicker look
    python bench/scale.py --kind finetune --trials 200

A fresh clone runs `campaign run` on one warm worker: `--kind generate` is the shipped generation declaration
with `eval.limit: 10`, its budgets removed, on the default tiny base model (built once, untimed, and named by
`model.checkpoint_dir`); `--kind finetune` is the default declaration with 4 training steps, `eval.limit: 10`,
pruner and budgets removed. Printed, at trials 10, 100, 500 and 1,000 (those the run reaches; means over the 5
trials around each): the worker's trial wall time, its stage seconds (the stages themselves), its `dvc commit`, and
the gap between finished trials, and the flow's share of it (the gap minus the worker's wall); a trial's overhead is
the gap minus its stage seconds (everything that is not the stage: the worker's record and the flow's ask, record,
tell, lineage, Prefect). Then the seconds of `dvc status`, a
no-op `dvc repro`, `campaign status`, `campaign report` (HTML), `campaign trace` of a middle trial and `campaign
compare`, and the sizes of the files every trial writes to (root dvc.lock, registry, study journal) and of
one trial's own record files. Last line: `overhead@<N>/overhead@10 <x>  overhead@<N> <y> s  slowest
command <z> s` (N = 1000 for a full run).
Goals (issue 20, 2-core CPU, one worker): overhead at trial 1,000 <= 1.1 x at trial 10 and <= 0.5 s; every command
<= 5 s at 1,000 trials (the HTML report <= 15 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from trial_overhead import build_base  # bench/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NAME = "scale"
MARKS = (10, 100, 500, 1000)
# Files every trial rewrites or appends to (the root ones, the study) and a trial's own files (the middle trial's).
RECORD_FILES = ("dvc.lock", "campaigns/registry.yaml", "study.journal")
TRIAL_FILES = ("trial.yaml", "dvc.yaml", "dvc.lock", "lineage.yaml")


def declaration(kind: str, n: int, base: Path) -> dict:
    """The campaign: short trials of the chosen kind on the prebuilt base, nothing that stops it early."""
    source = "params.generation.yaml" if kind == "generate" else "params.yaml"
    params = yaml.safe_load((ROOT / source).read_text())
    params["campaign"].update({"name": NAME, "n_trials": n, "n_init": 4, "workers": 1, "baseline": False})
    for key in ("stop_after", "optimization_budget", "pruner", "scheduler"):
        params["campaign"].pop(key, None)
    params.get("generate", {}).pop("inference_budget", None)
    params["model"] = {"checkpoint_dir": str(base)}
    params["eval"]["limit"] = 10
    if kind == "finetune":
        params["train"].update({"max_steps": 4, "eval_interval": 4, "lr_warmup_steps": 1})
    return params


def per_trial(ws: Path) -> list[dict[str, float]]:
    """Each finished trial, in completion order: worker wall, stage seconds, dvc commit, gap to the previous."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from hpo.layout import CampaignPaths
    from hpo.record.records import read_lineage

    lineage = read_lineage(CampaignPaths(NAME, ws))
    storage = JournalStorage(JournalFileBackend(str(ws / f"campaigns/{NAME}/study.journal")))
    study = optuna.load_study(study_name=optuna.study.get_all_study_names(storage)[0], storage=storage)
    done = sorted((t for t in study.trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    rows, previous = [], None
    for t in done:
        entry = lineage.get(t.user_attrs.get("trial_id"), {})
        stages = dict(entry.get("stage_seconds") or {})
        commit = stages.pop("dvc_commit", 0.0)
        if previous is not None and "wall_seconds" in entry:
            rows.append(
                {
                    "wall": entry["wall_seconds"],
                    "stages": sum(stages.values()),
                    "commit": commit,
                    "gap": (t.datetime_complete - previous).total_seconds(),
                }
            )
        previous = t.datetime_complete
    return rows


def around(rows: list[dict[str, float]], k: int) -> dict[str, float]:
    window = rows[max(0, k - 3) : k + 2]
    return {key: sum(r[key] for r in window) / len(window) for key in window[0]}


def timed(cmd: list[str], ws: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 2):  # trace exits 2 when an artefact is off: still timed
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--kind", choices=("generate", "finetune"), default="generate")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    base = build_base(work, yaml.safe_load((ROOT / "params.yaml").read_text()))
    ws = work / "ws"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
    (ws / "scale.yaml").write_text(yaml.safe_dump(declaration(args.kind, args.trials, base)))
    env = {
        **os.environ,
        "PREFECT_HOME": str(ws / ".prefect"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    began = time.perf_counter()
    with (work / "run.log").open("w") as log:
        subprocess.run(
            [sys.executable, "-m", "flows.cli", "run", "--params", "scale.yaml"],
            cwd=ws,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    print(f"campaign run: {time.perf_counter() - began:.0f} s for {args.trials} {args.kind} trials ({work})")

    rows = per_trial(ws)
    marks = [k for k in MARKS if k <= len(rows)] or [len(rows)]
    if marks[-1] < min(args.trials, MARKS[-1]):
        marks.append(len(rows))
    # flow: the gap minus the worker's wall (the flow's record, tell, ask, lineage and Prefect's task bookkeeping)
    print(f"{'trial':>6} {'wall s':>7} {'stages':>7} {'commit':>7} {'flow':>7} {'gap':>7} {'overhead':>9}")
    overhead = {}
    for k in marks:
        r = around(rows, k)
        overhead[k] = r["gap"] - r["stages"]
        flow_s = r["gap"] - r["wall"]
        print(
            f"{k:>6} {r['wall']:7.2f} {r['stages']:7.2f} {r['commit']:7.2f} {flow_s:7.2f} {r['gap']:7.2f} "
            f"{overhead[k]:9.2f}"
        )

    ids = sorted(p.name for p in (ws / f"campaigns/{NAME}/trials").iterdir() if p.is_dir())
    trial = ids[len(ids) // 2]
    cli = [sys.executable, "-m", "flows.cli"]
    commands = {
        "dvc status": [sys.executable, "-m", "dvc", "status"],
        "dvc repro (no-op)": [sys.executable, "-m", "dvc", "repro"],
        "campaign status": [*cli, "status", NAME],
        "campaign report (HTML)": [*cli, "report", NAME],
        f"campaign trace {NAME} {trial}": [*cli, "trace", NAME, trial],
        "campaign compare": [*cli, "compare", NAME],
    }
    seconds = {name: timed(cmd, ws, env) for name, cmd in commands.items()}
    for name, s in seconds.items():
        print(f"{name:<32} {s:6.1f} s")
    for name in RECORD_FILES:
        path = ws / name if "/" in name or name == "dvc.lock" else ws / f"campaigns/{NAME}/{name}"
        print(f"{str(path.relative_to(ws)):<40} {path.stat().st_size / 1024:8.1f} KiB")
    for name in TRIAL_FILES:
        path = ws / f"campaigns/{NAME}/trials/{trial}/{name}"
        print(f"{str(path.relative_to(ws)):<40} {path.stat().st_size / 1024:8.1f} KiB")
    last, first = marks[-1], marks[0]
    slowest = max(seconds.values())
    print(
        f"overhead@{last}/overhead@{first} {overhead[last] / overhead[first]:.2f}  "
        f"overhead@{last} {overhead[last]:.2f} s  slowest command {slowest:.1f} s"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
