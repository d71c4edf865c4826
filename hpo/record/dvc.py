"""Run DVC stages from a flow: `dvc repro` in a subprocess of this interpreter, its output kept in a log file.

DVC is the engine that runs and records stages; the flow only says which target to reproduce. `--wait-for-lock`
lets several processes share the repository (DVC serialises its lock instead of failing at once).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

TRANSIENT = ("Unable to acquire lock", "is busy")
STAGE_LINE = re.compile(r"Running stage '([\w.-]+)@")


class ReproError(RuntimeError):
    """`dvc repro` failed; `transient` says whether running it again may succeed (a lock, not the code)."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def repro(
    targets: list[str], log_file: Path, on_stage: Callable[[str], None] | None = None, *, single_item: bool = False
) -> None:
    """Runs `dvc repro <targets>`, appending its output to `log_file`.

    Args:
        targets: stage names such as `score@default-t003`.
        log_file: where DVC's and the stages' output goes.
        on_stage: called with the stage name (train_lora, …) each time DVC starts one.
        single_item: reproduce exactly the targets, in order, without checking their upstream stages (which
            would take write locks that other trials' stages, reading the same base model, hold).

    Raises:
        ReproError: with the last lines of the output.
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
            match = STAGE_LINE.search(line)
            if match and on_stage:
                on_stage(match.group(1))
        code = proc.wait()
    if code != 0:
        text = "\n".join(tail)
        raise ReproError(
            f"dvc repro {' '.join(targets)} failed (exit {code}); see {log_file}:\n{text}",
            transient=any(t in text for t in TRANSIENT),
        )
