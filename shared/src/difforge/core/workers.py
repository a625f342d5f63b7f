"""Worker processes that Ctrl-C does not reach, so the main process alone says it, in one line.

- :func:`ignore_interrupts`: a pool ``initializer`` (or the first line of a worker function) for
  forked workers, which start with the parent's modules already imported.
- :func:`spawn_context`: the ``mp_context`` for spawned workers. An initializer runs only once a
  spawned worker has imported its modules (seconds with torch); a Ctrl-C in the terminal reaches
  the whole process group before that, and each starting worker would print a traceback. A
  signal ignored at ``exec`` stays ignored, and Python keeps a SIGINT it finds ignored, so
  starting the workers while this process ignores SIGINT (for the few milliseconds of each start)
  closes that window.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

__all__ = ["ignore_interrupts", "spawn_context"]


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change signal handlers (and only it gets SIGINT)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _SpawnProcessIgnoringInterrupts(SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _interrupts_ignored():
            return SpawnProcess._Popen(process_obj)


class _SpawnContextIgnoringInterrupts(SpawnContext):
    Process = _SpawnProcessIgnoringInterrupts


def ignore_interrupts() -> None:
    """Initializer of forked worker processes (``multiprocessing`` pools, DataLoader
    ``worker_init_fn``): Ctrl-C then reaches only the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def spawn_context() -> SpawnContext:
    """The ``mp_context`` of a ``ProcessPoolExecutor`` whose spawned workers ignore Ctrl-C from
    their first instruction."""
    return _SpawnContextIgnoringInterrupts()
