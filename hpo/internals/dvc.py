"""DVC's, dvc-data's and fsspec's internals, in one place (docs/design.md#library-internals).

What is touched, and why no public API does it:

- the body of DVC's own `Repo.commit` (force=True), run over several targets at once (`commit_stages`):
  `Repo(root, _wait_for_lock=True)`, `lock_repo(repo)`, `repo.stage.collect_granular(target)` (StageInfo: stage,
  filter_info), `stage.save()`, `stage.commit(filter_info=…, relink=True)` and `dvcfile.dump_stages(stages,
  update_pipeline=False)`. A warm worker runs a trial's stages itself and records them as `dvc commit --force`
  does; DVC's public `Repo.commit` takes one target and rewrites dvc.lock — a YAML file with every trial's
  entries — for each (measured: 1.5 s for a trial's three stages in an 8-trial campaign, most of it parsing and
  dumping dvc.lock three times). `_wait_for_lock` is the Python API's `--wait-for-lock`: several processes share
  the repository, and DVC serialises its lock instead of failing at once.
- fsspec's `MemoryFileSystem.store` (`no_memory_files_left`): dvc-data's `Tree.digest` writes each directory's
  listing to a `MemoryFileSystem` under a fresh temporary name and never deletes it; that store is one dict per
  process, so a warm worker kept ~12 entries per trial and its `dvc commit` slowed with the campaign (measured in
  one process running the worker's trial function 600 times: commit 0.11 → 0.16 s; flat with the store emptied).
  Neither DVC nor dvc-data offers a way to drop them; the listings are in the DVC cache by then.

If DVC changes: a renamed name or parameter fails with `ImportError`, `AttributeError` or `TypeError` here. The
contract tests in `tests/test_contracts.py` fail first: `test_dvc_internals_of_commit_keep_their_signatures` checks
the signatures and that DVC's own `Repo.commit` still makes these calls (else ours no longer matches it);
`test_dvc_commit_records_stages_run_outside_dvc` records two stages of a throwaway repository and checks that
dvc.lock, the cache and `dvc status` say what `dvc repro` would have left.

DVC is imported only when a function here runs (importing it takes a while; the campaign's commands that do not
record stages never pay it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def no_memory_files_left() -> Iterator[None]:
    """Drops what DVC leaves in fsspec's in-memory filesystem while the block runs (see the module's note)."""
    from fsspec.implementations.memory import MemoryFileSystem

    before = set(MemoryFileSystem.store)
    try:
        yield
    finally:
        for path in set(MemoryFileSystem.store) - before:
            MemoryFileSystem.store.pop(path, None)


def stage_status(target: str, root: Path) -> dict[str, Any]:
    """`dvc status <target>` of the repository at `root`: empty when dvc.lock records the stage with the
    dependencies and outputs now on disk."""
    from dvc.repo import Repo

    with no_memory_files_left(), Repo(str(root)) as repo:
        return dict(repo.status(targets=[target]))


def commit_stages(targets: list[str], root: Path) -> None:
    """Records stages that ran outside `dvc repro` as `dvc commit --force <targets>` does, under DVC's repository
    lock (waited for), with one update of each lock file for all of them: each target's dependencies and outputs
    are hashed, its outputs moved into the DVC cache (linked back as the cache type says) and its dvc.lock entry
    written, as `dvc repro` does after running the stage's command.

    Raises:
        dvc.lock.LockError: an output's lock is busy (another process's `dvc repro` holds it).
        dvc.exceptions.DvcException: DVC could not record a target.
    """
    from dvc.repo import Repo, lock_repo

    with no_memory_files_left(), Repo(str(root), _wait_for_lock=True) as repo, lock_repo(repo):
        by_file: dict[str, tuple[Any, list[Any]]] = {}
        for target in targets:
            for info in repo.stage.collect_granular(target):
                info.stage.save()
                info.stage.commit(filter_info=info.filter_info, relink=True)
                by_file.setdefault(info.stage.dvcfile.path, (info.stage.dvcfile, []))[1].append(info.stage)
        for dvcfile, stages in by_file.values():
            dvcfile.dump_stages(stages, update_pipeline=False)
