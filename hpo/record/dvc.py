"""DVC from a flow or a worker: `dvc repro` in a subprocess (its output kept in a log file), and `dvc commit`
of stages that a warm worker ran itself.

DVC is the engine that records stages. The campaign's own stages (prepare_data, base_model, design, report) run
through `dvc repro`; a trial's stages run as functions in a warm worker and are then committed, which writes their
dvc.lock entries and caches their outputs exactly as `dvc repro` would have. `--wait-for-lock` (and
`_wait_for_lock` for the Python API) lets several processes share the repository: DVC serialises its lock
instead of failing at once. What this reaches past DVC's public API (the body of its commit, fsspec's in-memory
store) is in `hpo.internals.dvc`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hpo.internals.dvc import commit_stages, stage_status

TRANSIENT = ("Unable to acquire lock", "is busy")


class StageError(RuntimeError):
    """A stage failed (under `dvc repro` or in a worker); `transient` says whether running it again may succeed
    (a busy lock, not the code)."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[type[StageError], tuple[str, bool]]:
        # (an exception pickles as its class and args: a worker's failure reaches the campaign through Dask)
        return type(self), (str(self), self.transient)


def repro(targets: list[str], log_file: Path, *, single_item: bool = False) -> None:
    """Runs `dvc repro <targets>`, appending its output to `log_file`.

    Args:
        targets: stage names such as `score@default-t003`.
        log_file: where DVC's and the stages' output goes.
        single_item: reproduce exactly the targets, without their upstream stages (`dvc repro -s`).

    Raises:
        StageError: with the last lines of the output.
    """
    env = dict(os.environ)
    # Stage commands say `python`: make it this interpreter, whether or not the venv is activated.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: list[str] = []
    with log_file.open("a", buffering=1) as log:  # line-buffered: a killed flow loses no line of the log
        cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", *(["-s"] if single_item else []), *targets]
        log.write(f"$ {' '.join(cmd[1:])}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail = (tail + [line.rstrip()])[-15:]
        code = proc.wait()
    if code != 0:
        text = "\n".join(tail)
        raise StageError(
            f"dvc repro {' '.join(targets)} failed (exit {code}); see {log_file}:\n{text}",
            transient=any(t in text for t in TRANSIENT),
        )


# A stage that reads an output which another process's `dvc repro` holds (e.g. the base model while a second
# campaign process checks its prepare stages) is refused at once ("is busy"): the commit waits and tries again, so
# that the trial's computed stages are recorded rather than run again by the engine's retry of the whole trial.
COMMIT_BACKOFF: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30)


def up_to_date(target: str, root: Path = Path(".")) -> bool:
    """Whether dvc.lock records the stage `target` with the dependencies and outputs now on disk (`dvc status
    <target>` says nothing about it): what `dvc repro` would skip."""
    return not stage_status(target, root)


def commit(targets: list[str], root: Path = Path("."), backoff: tuple[float, ...] = COMMIT_BACKOFF) -> None:
    """Records stages that ran outside `dvc repro` as `dvc commit --force <targets>` does, under DVC's
    repository lock, with one update of each lock file for all of them (`hpo.internals.dvc.commit_stages`: the
    body of DVC's own `Repo.commit` over several targets). A busy output lock is waited for (`backoff`: the
    seconds between attempts).

    Raises:
        StageError: DVC could not record a target (transient when its lock stayed busy through every attempt).
    """
    import time

    from dvc.exceptions import DvcException
    from dvc.lock import LockError

    for attempt, wait in enumerate((*backoff, None)):
        try:
            commit_stages(targets, root)
            return
        except LockError as err:
            if wait is None:
                raise StageError(
                    f"dvc commit {' '.join(targets)}: still busy after {attempt + 1} attempts: {err}", transient=True
                ) from err
            print(f"dvc commit: {str(err).splitlines()[0]}; trying again in {wait:g} s", flush=True)
            time.sleep(wait)
        except DvcException as err:
            raise StageError(f"dvc commit {' '.join(targets)}: {err}", transient=False) from err
