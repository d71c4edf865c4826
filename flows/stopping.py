"""Stopping `campaign run` cleanly: Ctrl-C (SIGINT) and SIGTERM end it, a second one ends it at once.

A terminal sends Ctrl-C's SIGINT to the whole foreground process group, and SLURM, systemd and `timeout` send
SIGTERM to every process of a job: the campaign process and the processes it started (Prefect's temporary server,
the local Dask cluster's workers, the `dvc repro` of prepare). If those died first, the flow could no longer report
its own end to Prefect (its client retries a dead server for minutes) nor record the trials that were running. So:

- the processes the run starts and stops itself do not act on a signal sent to the group: Prefect's temporary
  server is started with SIGINT and SIGTERM blocked (`shielded`: a blocked signal mask is inherited by the process
  a thread starts), the local cluster's Dask workers ignore them (this module is their Dask preload,
  `dask_setup`); the run closes them itself once the flow has recorded the stop, and a SIGKILL still ends them
  all. (Workers of another scheduler keep their own handling: they are not the campaign's.)
- in the campaign process, the first SIGINT or SIGTERM raises `Interrupted` in the main thread (Prefect's flow
  engine raises its own `TerminationSignal` for a SIGTERM while a flow runs): the flow records the trials it was
  running as interrupted, Prefect records the flow run as crashed, the Dask cluster and the temporary server are
  closed, and `campaign run` exits with 128 + the signal's number (130, 143);
- a second signal during that shutdown kills the run's child processes and exits at once: the trials left running
  are then adopted by the next run, as after a kill.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the signal that is stopping this process, once one came
# Prefect's flow engine, having turned a SIGTERM into `TerminationSignal`, sends SIGTERM to the process once more
# for the handler it had replaced (ours) as the exception leaves the outermost flow: not a second signal.
_prefect_resend: list[bool] = []


class Interrupted(KeyboardInterrupt):
    """The first SIGINT or SIGTERM, raised in the main thread (a KeyboardInterrupt, as Prefect's engine expects of
    Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(name(signum))
        self.signum = signum


def name(signum: int) -> str:
    return signal.Signals(signum).name


def signal_of(err: BaseException) -> int | None:
    """The signal behind an exception that is stopping the run — ours, Prefect's `TerminationSignal` (SIGTERM while
    a flow runs) or a plain KeyboardInterrupt — or None for any other exception."""
    from prefect.exceptions import TerminationSignal

    if isinstance(err, Interrupted):
        return err.signum
    if isinstance(err, TerminationSignal):
        return int(err.signal)
    if isinstance(err, KeyboardInterrupt):
        return int(signal.SIGINT)
    return None


def _handler(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGTERM and _prefect_resend:
        _prefect_resend.clear()
        return
    if _received:
        at_once(signum)
    _received.append(signum)
    raise Interrupted(signum)


def at_once(signum: int) -> None:
    """The second signal: kills this process's children (the Dask cluster, Prefect's server, a DVC process) and
    exits without cleaning up."""
    import psutil

    print(f"\n{name(signum)} again: stopping at once", file=sys.stderr, flush=True)
    for child in psutil.Process().children(recursive=True):
        with suppress(psutil.Error):
            child.kill()
    os._exit(128 + signum)


def noticed(err: BaseException) -> int | None:
    """Called where the run first sees an exception: when a signal is behind it, returns the signal and makes
    sure a second one ends the run at once (Prefect's own SIGTERM handler is in place while a flow runs)."""
    from prefect.exceptions import TerminationSignal

    signum = signal_of(err)
    if signum is None:
        return None
    if not _received:
        _received.append(signum)
        if isinstance(err, TerminationSignal):
            _prefect_resend.append(True)
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)
    return signum


@contextmanager
def handled() -> Iterator[None]:
    """Within the block (main thread), the first SIGINT or SIGTERM raises `Interrupted`; a second one ends the
    process at once (`at_once`)."""
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _received.clear()
        _prefect_resend.clear()


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker of the campaign's local cluster as it starts (`LocalCluster(preload=
    ["flows.stopping"])`): the worker ignores SIGINT and SIGTERM, which a terminal or a batch scheduler sends to the
    whole process group; the campaign closes its cluster itself (Dask's nanny ends a worker that does not close in
    time with SIGKILL)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


@contextmanager
def shielded() -> Iterator[None]:
    """Threads and processes started within the block do not receive SIGINT or SIGTERM (blocked in this thread
    meanwhile, and in what it starts): the run stops them itself once it has recorded the stop. A signal that
    arrives meanwhile is delivered when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
