"""What the person who started a campaign sees: a live line per running trial, and a line per finished one.

While a trial trains, its worker's output goes to `campaigns/<c>/logs/<trial>.log` (a shared folder, as DVC
needs anyway); `LiveTrials` follows those logs and shows a tqdm bar per running trial with its stage, step,
training loss and ETA (only on a terminal: tqdm turns itself off when output goes to a file). Dask's own
dashboard, whose address the run prints first, shows the workers.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hpo.campaign import Trial
from hpo.config import Params
from hpo.layout import BASELINE, UNTUNED, CampaignPaths
from hpo.trials.kinds import kind_of

# litgpt's per-iteration line ("Epoch 1 | iter 12 step 12 | loss train: 1.234, val: n/a | iter time: …") and
# the worker's line for each stage it starts.
STEP = re.compile(r"iter \d+ step (\d+) \| loss train: ([\d.]+|nan|inf)")
STAGE = re.compile(r"Running stage '(\w+)@")


class LiveTrials:
    """A progress bar per running trial, fed by its log file from a background thread."""

    def __init__(self, paths: CampaignPaths, params: Params, interval: float = 0.5) -> None:
        self.paths = paths
        self.params = params
        self.interval = interval
        self.bars: dict[str, tuple[tqdm, Path, list[int]]] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, trial: Trial) -> None:
        """Shows a bar for a trial that is about to run."""
        total = kind_of(self.params).progress_total(self.params, trial.params)
        log = self.paths.dir / "logs" / f"{trial.id}.log"
        offset = log.stat().st_size if log.is_file() else 0
        bar = tqdm(
            total=total,
            desc=f"{trial.id:>8} queued",
            unit="step" if total else "it",
            leave=False,
            disable=None,
            dynamic_ncols=True,
        )
        with self.lock:
            self.bars[trial.id] = (bar, log, [offset])
        if self.thread is None:
            self.thread = threading.Thread(target=self._follow, name="live-trials", daemon=True)
            self.thread.start()

    def stop(self, trial: str) -> None:
        """Removes a finished trial's bar."""
        with self.lock:
            entry = self.bars.pop(trial, None)
        if entry:
            entry[0].close()

    def close(self) -> None:
        self.done.set()
        for trial in list(self.bars):
            self.stop(trial)

    def _follow(self) -> None:
        while not self.done.wait(self.interval):
            with self.lock:
                for trial, (bar, log, offset) in self.bars.items():
                    self._update(trial, bar, log, offset)

    @staticmethod
    def _update(trial: str, bar: tqdm, log: Path, offset: list[int]) -> None:
        if not log.is_file():
            return
        with log.open("rb") as f:
            f.seek(offset[0])
            text = f.read().decode("utf-8", "replace")
        cut = text.rfind("\n") + 1  # whole lines only; the rest is read next time
        offset[0] += len(text[:cut].encode())
        for line in text[:cut].splitlines():
            if stage := STAGE.search(line):
                bar.set_description_str(f"{trial:>8} {stage.group(1)}")
            elif step := STEP.search(line):
                bar.update(int(step.group(1)) - bar.n)
                bar.set_postfix_str(f"loss {step.group(2)}")


def _spent(spent: dict[str, float]) -> str:
    """The campaign's running total after a trial: wall time, GPU-hours, training tokens, inference cost."""
    parts = [f"{spent['wall_seconds']:.0f}s"] if spent.get("wall_seconds") else []
    parts += [f"{spent['gpu_hours']:.2f} GPU-h"] if spent.get("gpu_hours") else []
    parts += [f"{spent['train_tokens']:,.0f} train tok"] if spent.get("train_tokens") else []
    parts += [f"{spent['inference_cost']:,.4g} inference"] if spent.get("inference_cost") else []
    return f" (total {', '.join(parts)})" if parts else ""


class Progress:
    """One line per finished trial: id, params, state, score, best so far."""

    def __init__(self, params: Params) -> None:
        self.maximize = params.eval.direction == "maximize"
        self.best: tuple[float, str] | None = None
        self.baseline: float | None = None
        self.baseline_is = {
            "finetune": "litgpt default LoRA",
            "generate": "the generate section's settings",
            "joint": "litgpt default LoRA and the generate section's settings",
        }[params.campaign.kind]

    def show(self, trial: str, values: dict[str, Any], result: dict[str, Any]) -> None:
        score = result.get("score")
        if trial == BASELINE:
            self.baseline = score
        elif score is not None and (self.best is None or (score > self.best[0]) == self.maximize):
            self.best = (score, trial)
        shown = " ".join(f"{k}={_short(v)}" for k, v in values.items())
        best = f"best={self.best[0]:.4f} ({self.best[1]})" if self.best else "best=-"
        score_text = f"{score:.4f}" if score is not None else "-"
        extra = f"  [{result.get('reason')}]" if result["state"] != "complete" else ""
        if result.get("feasible") is False:
            extra += "  [infeasible: over campaign.constraints]"
        wall = f"{result['wall_seconds']:.0f}s" if result.get("wall_seconds") else ""
        total = _spent(result.get("spent") or {})
        tqdm.write(f"{trial:>8}  {result['state']:<8} score={score_text}  {best}  {wall}{total}  {shown}{extra}")

    def show_untuned(self, result: dict[str, Any]) -> None:
        """The untuned reference's line: the base model scored before any tuning (or recorded by an earlier run,
        or why its evaluation failed)."""
        score = result.get("score")
        score_text = f"{score:.4f}" if score is not None else "-"
        if result["state"] == "failed":
            how = f"  [{result.get('reason')}]  the campaign goes on without it; a later run tries again"
        elif result.get("ran") is False:
            how = "  (recorded by an earlier run)"
        else:
            wall = f"{result['wall_seconds']:.0f}s  " if result.get("wall_seconds") else ""
            how = f"  {wall}the base model before any tuning (the reference)"
        tqdm.write(f"{UNTUNED:>8}  {result['state']:<8} score={score_text}{how}")

    def final(self, summary: dict[str, Any]) -> None:
        best = summary.get("best")
        print("\n" + "=" * 78)
        pruned = f", {summary['pruned']} pruned" if summary.get("pruned") else ""
        print(f"campaign {summary['campaign']}: {summary['completed']} complete, {summary['failed']} failed{pruned}")
        if summary.get("optimization_budget") or summary.get("inference_budget"):
            print(
                f"spent {summary['inference_cost']:g} (optimization budget {summary['optimization_budget']}); "
                f"inference budget per instance {summary['inference_budget']}"
            )
        print(f"objective: {summary['metric']} ({summary['direction']})")
        # the references beside the best: the model before tuning, and tuned at the default settings
        untuned = _score(summary.get("untuned_score"))
        if summary.get("untuned_failed"):
            untuned = f"failed ({summary['untuned_failed']})"
        found = f"best {best['trial']} {best['score']:.4f}" if best else "best -"
        print(f"untuned {untuned}   baseline ({self.baseline_is}) {_score(summary.get('baseline_score'))}   {found}")
        if best:
            print("params: " + ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items()))
            for kind, path in (summary.get("artefacts") or {}).items():
                print(f"  {kind:<8} {path}")
        if summary.get("pareto_front"):
            names = list(summary["objectives"])
            print(f"Pareto front ({', '.join(f'{n} {d}' for n, d in summary['objectives'].items())}):")
            for point in summary["pareto_front"]:
                print(f"  {point['trial']:>8}  " + "  ".join(f"{n}={_short(point[n])}" for n in names))
        print(f"report: campaigns/{summary['campaign']}/report/ (trials.csv, best.json, history.png)")


def _score(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
