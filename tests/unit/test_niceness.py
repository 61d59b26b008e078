"""Speech engines' threads are made nicer than the chat engine's (backends/niceness.py)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from homeport.backends.niceness import nicer_thread, threads_started


def _nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_threads_started_inside_the_block_are_reniced_and_others_are_not() -> None:
    release, seen = threading.Event(), {}

    def worker() -> None:
        seen["tid"] = threading.get_native_id()
        release.wait(30)

    mine = _nice_of(threading.get_native_id())
    with threads_started(7):
        started = threading.Thread(target=worker)
        started.start()
        while "tid" not in seen:
            release.wait(0.01)
    try:
        assert _nice_of(seen["tid"]) == max(mine, 7)
        assert _nice_of(threading.get_native_id()) == mine  # the caller keeps its priority
    finally:
        release.set()
        started.join()


def test_an_executors_worker_is_reniced() -> None:
    with ThreadPoolExecutor(1, initializer=nicer_thread(5)) as pool:
        assert pool.submit(lambda: _nice_of(threading.get_native_id())).result() >= 5
