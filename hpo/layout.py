"""Where a campaign keeps its record: the one place that knows the folder layout under `campaigns/`.

```
campaigns/registry.yaml           the campaigns (and merges) that dvc.yaml's `foreach` expands into stages
campaigns/<name>/params.yaml      the validated campaign declaration, frozen when the campaign starts
campaigns/<name>/failures.yaml    trials that raised, with their reason (their stages are withdrawn)
campaigns/<name>/warm_start.yaml  prior observations taken from earlier campaigns, with their provenance
campaigns/<name>/study.journal    the Optuna study (JournalStorage)
campaigns/<name>/data/            train/val/eval splits and the lm-eval task folder (prepare_data)
campaigns/<name>/base_model/      the base checkpoint, or a pointer to the user's (base_model)
campaigns/<name>/design.json      the Latin-hypercube points (design)
campaigns/<name>/untuned/         the untuned reference (untuned): the base model scored before any tuning, as the
                                  trials are scored — metrics.json, instances.jsonl
campaigns/<name>/trials/<id>/     one trial, every file of it written once or updated alone (bookkeeping per trial
                                  does not grow with the campaign):
    trial.yaml                    its decision (`{<id>: {params, seeds, threads, budget, pruned}}`), written before
                                  it runs; its stages' DVC parameters
    dvc.yaml, dvc.lock            its stages (train_lora → score, generate, …), written with the decision, and DVC's
                                  record of them (the worker's `dvc commit`, or `dvc repro`)
    lineage.yaml                  code revision, library versions, data/model hashes, wall times, costs
    adapter/, train.json, loss.csv, metrics.json; responses.jsonl (generation)
campaigns/<name>/trials.yaml      (campaigns recorded before per-trial records) every trial's decision; its trials'
campaigns/<name>/lineage.yaml     stages are dvc.yaml's `foreach` over the registry's adapters/trials/generations
campaigns/<name>/merged/<id>/     a trial's merged checkpoint, only for the trials merged on demand (merge_lora):
                                  outside trials/, which the report stage depends on
campaigns/<name>/report/          trials.csv, best.json, history.png (report)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CAMPAIGNS_DIR = Path("campaigns")
REGISTRY = CAMPAIGNS_DIR / "registry.yaml"
BASELINE = "baseline"  # the id of the trial run at litgpt's default settings, for comparison
UNTUNED = "untuned"  # the reference before any tuning: the base model scored as the trials are (`untuned@<c>`)
STOPPED = "stopped"  # lineage.yaml: the signal that stopped the run while the trial ran (until it runs again)


@dataclass(frozen=True)
class CampaignPaths:
    """Paths of one campaign's record, relative to the workspace root (where dvc.yaml lives)."""

    name: str
    root: Path = Path(".")

    @property
    def dir(self) -> Path:
        return self.root / CAMPAIGNS_DIR / self.name

    @property
    def params(self) -> Path:
        return self.dir / "params.yaml"

    @property
    def trials(self) -> Path:
        return self.dir / "trials.yaml"

    @property
    def failures(self) -> Path:
        return self.dir / "failures.yaml"

    @property
    def lineage(self) -> Path:
        return self.dir / "lineage.yaml"

    @property
    def warm_start(self) -> Path:
        return self.dir / "warm_start.yaml"

    @property
    def journal(self) -> Path:
        return self.dir / "study.journal"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def tasks(self) -> Path:
        return self.data / "tasks"

    @property
    def base_model(self) -> Path:
        return self.dir / "base_model"

    @property
    def design(self) -> Path:
        return self.dir / "design.json"

    @property
    def report(self) -> Path:
        return self.dir / "report"

    @property
    def untuned(self) -> TrialPaths:
        """`<campaign>/untuned/`: the untuned reference's metrics.json and instances.jsonl (the `untuned` stage),
        laid out as a trial's."""
        return TrialPaths(self.dir / UNTUNED)

    def trial(self, trial: str) -> TrialPaths:
        return TrialPaths(self.dir / "trials" / trial)


@dataclass(frozen=True)
class TrialPaths:
    """Paths of one trial's artefacts."""

    dir: Path

    @property
    def adapter(self) -> Path:
        return self.dir / "adapter"

    @property
    def decision(self) -> Path:
        """`trial.yaml`: the trial's decision, `{<id>: {params, seeds, …}}` (the shape of a legacy `trials.yaml`)."""
        return self.dir / "trial.yaml"

    @property
    def pipeline(self) -> Path:
        """The trial's own `dvc.yaml` (its stages); DVC writes their record to `dvc.lock` beside it."""
        return self.dir / "dvc.yaml"

    @property
    def lock(self) -> Path:
        return self.dir / "dvc.lock"

    @property
    def lineage(self) -> Path:
        return self.dir / "lineage.yaml"

    @property
    def merged(self) -> Path:
        """`<campaign>/merged/<id>`: beside the trials, not in the trial's folder (the report stage depends on
        `trials/`, which a merge after the report must leave unchanged)."""
        return self.dir.parent.parent / "merged" / self.dir.name

    @property
    def train_metrics(self) -> Path:
        return self.dir / "train.json"

    @property
    def loss_curve(self) -> Path:
        return self.dir / "loss.csv"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.json"

    @property
    def instances(self) -> Path:
        """`instances.jsonl`: each evaluated instance's value (`{task, doc_id, value}`), in evaluation order."""
        return self.dir / "instances.jsonl"

    @property
    def responses(self) -> Path:
        return self.dir / "responses.jsonl"


# The score stage's DVC dependency for a campaign without `eval.task_dir`: the templates its task YAMLs come from.
DEFAULT_TASK_DIR = "data/tasks"


def task_dir_dep(task_dir: str | Path | None) -> str:
    """The folder a campaign's score stages depend on (the registry's `task_dir`): `eval.task_dir` as given,
    relative to the workspace, or `data/tasks` when it is unset."""
    return Path(task_dir).as_posix() if task_dir else DEFAULT_TASK_DIR


def stage_args(description: str, *, trial: bool) -> tuple[CampaignPaths, str]:
    """The thin CLI every stage shares: `--campaign NAME` and, for trial stages, `--trial ID`.

    Returns:
        The campaign's paths and the trial id ("" for campaign stages).
    """
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--campaign", required=True, help="campaign name (campaigns/<name>/params.yaml)")
    if trial:
        parser.add_argument("--trial", required=True, help="trial id in campaigns/<name>/trials.yaml, e.g. t003")
    args = parser.parse_args()
    return CampaignPaths(args.campaign), getattr(args, "trial", "")
