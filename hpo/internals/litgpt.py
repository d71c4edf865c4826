"""Every run-time swap of a litgpt function, in one place (docs/design.md#library-internals): litgpt 0.5.13's LoRA
script offers no hook for what a trial needs, so the train_lora stage swaps four names of `litgpt.finetune.lora`
while it runs `litgpt finetune_lora` in-process (`hpo.litgpt_cli.run_litgpt`), and puts litgpt's own back
afterwards.

What is swapped, what it replaces and why there is no hook:

- `load_checkpoint(fabric, model, checkpoint_path, strict=False)` — `main` always reads `lit_model.pth` from disk
  for every run. Replaced (single-device strategies only) by a `load_state_dict` of the base weights a warm worker
  keeps in memory (the stage hands in `hpo.cache.base_state`), which is what litgpt's own loader does
  after reading the file. `main` takes no weights and no loader argument.
- `merge_lora(checkpoint_dir=…, pretrained_checkpoint_dir=…, precision=…)` — `main` always merges the adapter into
  `final/lit_model.pth` at the end; the merge_lora stage owns the merged model, so litgpt's merge becomes a no-op.
  `main` has no switch to skip it.
- `fit(fabric=…, …, train=…, eval=…, …)` — wrapped only to catch the `train` and `eval` arguments `main` passes it:
  `eval` tells an interval's validation from the first and final ones, and setting `train.epochs = 0` ends the
  loop after the current step (its next iteration checks `train_iterator.epoch >= train.epochs` and breaks).
- `validate(fabric, model, val_dataloader, eval, verbose=…)` — wrapped to hand each interval's validation loss to
  the pruner (`hpo.search.training_pruning.Stop`). lora.py's loop has no callbacks and logs the validation loss
  only to the CSV logger, so there is nothing else to listen to.

If litgpt changes: a renamed name fails the swap (`AttributeError`); new or renamed parameters fail the call
into our wrapper (`TypeError`, or `KeyError` if `main` stops passing `train` and `eval` to `fit` as keywords); a
name `main` no longer looks up in the module's globals silently stops taking effect (the base weights come from
disk again, litgpt merges again, the pruner is never asked). If the loop validates at an interval with a copy of
`eval`, the pruner is never asked; if it validates at other steps than every `eval.interval`-th, the pruner is
told the wrong step; if it stops checking `train.epochs` each iteration, a pruned trial still trains to
`max_steps`. The contract tests in `tests/test_contracts.py` fail there first:
`test_litgpt_swapped_functions_keep_their_signatures` and
`test_litgpt_main_calls_the_swapped_functions_as_the_hooks_expect` check the signatures and how `main` and `fit`
call the names; `test_pruning_counts_steps_as_litgpts_loop_does` runs two 2-step trainings.

The swaps are process-wide (module attributes), so two trainings in two threads of one process — a Dask worker
started with `--nthreads 2` — would see each other's functions. Every swap holds `LOCK`, a process-wide
re-entrant lock, for as long as it is in place: such trainings run one after the other, never interleaved (a
second thread waits for the first training to end; run trainings side by side in separate worker processes).
The lock also covers `run_litgpt`'s swap of `sys.argv` when it runs inside `lora_hooks`
(`test_litgpt_hooks_serialise_trainings_in_threads`).

The module imports nothing of `hpo`: what it needs of a trial (the schedule, the stop, the cached base weights) is
handed in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Asked after each validation at an interval with (step, validation loss); returns who stops the training there, or
# None to go on (`hpo.search.training_pruning.Stop`).
Stop = Callable[[int, float], str | None]
# The base checkpoint's weights (a `lit_model.pth` state dict) by its path, as the caller keeps them.
BaseState = Callable[[Path], dict[str, Any]]

# Held while any swap below is in place: one litgpt training with swapped functions per process at a time.
LOCK = threading.RLock()


@contextmanager
def lora_hooks(
    stop: Stop | None, stopped: dict[str, Any], *, eval_interval: int, max_steps: int, base_state: BaseState
) -> Iterator[None]:
    """Both swaps of the train_lora stage (`warm_litgpt` and `stopping`) under `LOCK`, for one litgpt run."""
    with LOCK, warm_litgpt(base_state), stopping(stop, stopped, eval_interval=eval_interval, max_steps=max_steps):
        yield


@contextmanager
def warm_litgpt(base_state: BaseState) -> Iterator[None]:
    """litgpt's LoRA script, reading the base weights from the process's cache and skipping its own merge.

    `litgpt.finetune.lora.main` loads `lit_model.pth` from disk for every run and merges the adapter into
    `final/lit_model.pth` at the end. In a warm worker the base weights are read once (`base_state`: the stage
    hands in `hpo.cache.base_state`) and copied into each trial's model, as litgpt's own single-device
    `load_checkpoint` does (`load_state_dict`); the merge_lora stage owns the merged model, so litgpt's extra
    merge is skipped. Sharded strategies (FSDP,
    model parallel) keep litgpt's loader.
    """
    import litgpt.finetune.lora as lora
    from lightning.fabric.strategies import FSDPStrategy, ModelParallelStrategy

    with LOCK:
        litgpt_load, litgpt_merge = lora.load_checkpoint, lora.merge_lora

        def load_checkpoint(fabric: Any, model: Any, checkpoint_path: Path, strict: bool = True) -> None:
            if isinstance(fabric.strategy, FSDPStrategy | ModelParallelStrategy):
                return litgpt_load(fabric, model, checkpoint_path, strict=strict)
            model.load_state_dict(base_state(Path(checkpoint_path)), strict=strict)

        lora.load_checkpoint, lora.merge_lora = load_checkpoint, lambda **_: None
        try:
            yield
        finally:
            lora.load_checkpoint, lora.merge_lora = litgpt_load, litgpt_merge


@contextmanager
def stopping(stop: Stop | None, stopped: dict[str, Any], *, eval_interval: int, max_steps: int) -> Iterator[None]:
    """Asks `stop` after each of litgpt's validations at an evaluation interval (every `eval_interval` steps of a
    training of `max_steps`, before the last); when it answers, ends litgpt's training loop after that step — its
    loop leaves at the next iteration once `train.epochs` is reached — and litgpt then validates and saves the
    adapter as at the end of any run. Fills `stopped` with the step and who stopped it."""
    if stop is None:
        yield
        return
    import litgpt.finetune.lora as lora

    with LOCK:
        litgpt_fit, litgpt_validate = lora.fit, lora.validate
        loop: dict[str, Any] = {"validations": 0}

        def fit(*args: Any, **kwargs: Any) -> Any:
            loop["train"], loop["eval"] = kwargs["train"], kwargs["eval"]
            return litgpt_fit(*args, **kwargs)

        def validate(fabric: Any, model: Any, val_dataloader: Any, eval: Any, verbose: bool = True) -> Any:
            val_loss = litgpt_validate(fabric, model, val_dataloader, eval, verbose=verbose)
            if eval is loop.get("eval") and not stopped:  # an interval's validation (the first and final are copies)
                loop["validations"] += 1
                step = loop["validations"] * eval_interval
                by = stop(step, float(val_loss)) if step < max_steps else None
                if by:
                    stopped.update(step=step, by=by)
                    loop["train"].epochs = 0  # litgpt's loop stops at its next epoch check
            return val_loss

        lora.fit, lora.validate = fit, validate
        try:
            yield
        finally:
            lora.fit, lora.validate = litgpt_fit, litgpt_validate
