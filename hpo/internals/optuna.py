"""Optuna's private names, in one place (docs/design.md#library-internals).

What is touched, and why no public API does it:

- `Study._storage` and `Study._study_id`, with the storage's `get_trial_id_from_study_id_trial_number`, and the
  `Trial(study, trial_id)` constructor (`trial_by_number`): a trial is asked in the campaign process (`study.ask`)
  and trained in a worker process, which reports its validation losses to the same trial and asks the pruner
  (`Trial.report`, `Trial.should_prune`). Optuna hands out a live `Trial` only from `ask` (or `optimize`); its
  public API gives other processes the frozen copy (`FrozenTrial`), which cannot report. So the worker finds the
  trial's storage id by its number and builds the `Trial` itself, as `Study.ask` does.
- `FrozenTrial._trial_id` (`live_trial`): a resumed campaign adopts the running trials a stopped run left behind
  (`hpo.search.study.orphaned` lists them as frozen trials) and goes on with them as live trials: there is no
  public way from a frozen trial to its live one.
- the storage's heartbeat methods, `get_heartbeat_interval()` and `record_heartbeat(trial_id)`, through
  `Study._storage` (`heartbeat_interval`, `record_heartbeat`): Optuna records heartbeats only inside
  `Study.optimize`, whose loop the campaign does not use (it asks and tells across processes), so the campaign
  beats for its running trials itself.

If Optuna changes: a renamed attribute or method fails with `AttributeError`, a changed constructor with
`TypeError`, here. `tests/test_contracts.py` (`test_optuna_internals_keep_their_signatures`,
`test_optuna_trial_built_from_storage_reports_and_prunes`) checks the signatures and that a trial built this way,
in a second process's study, is the trial asked: what it reports is stored and `should_prune` follows the pruner.
"""

from __future__ import annotations

from typing import Any

import optuna


def trial_by_number(study: optuna.Study, number: int) -> optuna.trial.Trial:
    """The live trial numbered `number` in `study` (asked by another process), to report to and ask the pruner."""
    storage_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, storage_id)


def live_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.trial.Trial:
    """The live trial of a frozen one of `study` (a running trial that a stopped run left behind)."""
    return optuna.trial.Trial(study, frozen._trial_id)


def heartbeat_interval(study: optuna.Study) -> int | None:
    """The seconds between heartbeats of the study's storage, or None when it keeps none (a journal file)."""
    storage: Any = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    return None if interval is None else int(interval)


def record_heartbeat(study: optuna.Study, trial: optuna.trial.Trial) -> None:
    """Records a heartbeat of a running trial in a storage that keeps heartbeats (`heartbeat_interval` not None)."""
    storage: Any = study._storage
    storage.record_heartbeat(trial._trial_id)
