"""merge_lora: merge a trial's LoRA adapter into its base model, as a separate, complete litgpt checkpoint.

Uses litgpt's own `merge_lora` on a copy of the adapter folder, then drops the LoRA weights from the copy, so
`merged/` is a plain checkpoint that `litgpt generate`, `litgpt evaluate` or the score stage load as they are.
A trial whose training failed has nothing worth merging: the stage writes only a note saying why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hpo.cache import pin_threads
from hpo.checkpoint import resolve_checkpoint
from hpo.config import Params
from hpo.layout import CampaignPaths, stage_args
from hpo.record.records import read_trial
from hpo.trials.pruners import Pruners


def merge_lora(adapter_dir: Path, base_checkpoint: Path, out_dir: Path) -> Path:
    """Writes the merged checkpoint of `adapter_dir` over `base_checkpoint` into `out_dir`.

    Args:
        adapter_dir: the train_lora stage's adapter folder (`lit_model.pth.lora` and config files).
        base_checkpoint: the base litgpt checkpoint the adapter was trained on.
        out_dir: the merged checkpoint folder to write (replaced if present).

    Returns:
        The path of the merged weights.
    """
    from litgpt.scripts.merge_lora import merge_lora as litgpt_merge_lora

    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(adapter_dir, out_dir)
    litgpt_merge_lora(checkpoint_dir=out_dir, pretrained_checkpoint_dir=base_checkpoint)
    (out_dir / "lit_model.pth.lora").unlink()
    return out_dir / "lit_model.pth"


def run(paths: CampaignPaths, trial_id: str, *, params: Params | None = None, pruners: Pruners | None = None) -> Path:
    """The stage for one recorded trial: what `python -m stages.merge_lora` and a warm worker both run. It reads no
    params and asks no pruner: `params` and `pruners` are taken as every trial stage takes them, and unused.

    Returns:
        The merged weights, or the note saying why the trial has none.
    """
    pin_threads(read_trial(paths, trial_id).get("threads"))
    trial = paths.trial(trial_id)
    trained = json.loads(trial.train_metrics.read_text())
    if trained["state"] != "complete":
        if trial.merged.exists():
            shutil.rmtree(trial.merged)
        trial.merged.mkdir(parents=True)
        note = trial.merged / "NOT_MERGED.json"
        note.write_text(json.dumps(trained, indent=2) + "\n")
        return note
    return merge_lora(trial.adapter, resolve_checkpoint(paths.base_model), trial.merged)


def main() -> None:
    paths, trial_id = stage_args("Merge one trial's LoRA adapter into its base model.", trial=True)
    print(run(paths, trial_id))


if __name__ == "__main__":
    main()
