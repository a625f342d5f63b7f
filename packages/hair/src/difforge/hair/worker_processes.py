"""Worker processes that Ctrl-C does not reach: a ``spawn`` start method whose processes begin
with SIGINT ignored.

``difforge.core.cli.ignore_interrupts`` as a pool ``initializer`` runs only once a spawned worker
has imported its modules (seconds with torch), and importing it makes every worker import torch;
a Ctrl-C in the terminal before that reaches the whole process group and each starting worker
prints a traceback. A signal ignored at ``exec``
stays ignored, and Python keeps a SIGINT it finds ignored, so starting the workers while this
process ignores SIGINT (for the few milliseconds of each start) closes that window. The main
process still gets the Ctrl-C and reports it in one line.

Meant for the core (``difforge.core.cli``), beside ``ignore_interrupts``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any


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


def spawn_context() -> SpawnContext:
    """The ``mp_context`` of a ``ProcessPoolExecutor`` whose spawned workers ignore Ctrl-C from
    their first instruction."""
    return _SpawnContextIgnoringInterrupts()
