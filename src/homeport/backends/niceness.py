"""Lower the CPU priority of the threads a speech engine computes on, so chat decoding goes first.

llama.cpp decodes with a team of threads that meet at a barrier after every operation: when one
of them shares its core with other work, the whole team waits. Measured on 2 cores: a Whisper
transcription running beside 4 chat streams cut their output from ~110 to ~45 tok/s at equal
priority (bench/speech.py). Linux schedules threads, and a thread's niceness is its own, so the
speech engines' threads (the worker that calls them, and the threads their runtimes start) are
made nicer; the chat engine's are not.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["nicer_thread", "threads_started"]


def nicer_thread(nice: int) -> Callable[[], None]:
    """An executor initializer that makes its worker thread `nice`."""

    def initializer() -> None:
        _renice(threading.get_native_id(), nice)

    return initializer


@contextmanager
def threads_started(nice: int) -> Iterator[None]:
    """Make every thread started inside the block (a runtime's thread pool) `nice`."""
    before = _threads()
    yield
    for tid in _threads() - before:
        _renice(tid, nice)


def _threads() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:  # not Linux: nothing to renice
        return set()


def _renice(tid: int, nice: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except (OSError, AttributeError):  # gone already, or no such call here
        pass
