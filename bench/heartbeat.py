"""A second client asking a server's /healthz every 20 ms while a bench runs its work: the event
loop's longest stall during each piece of work (bench/long_prompts.py, bench/truncation.py)."""

from __future__ import annotations

import threading
import time

import httpx


class Heartbeat:
    def __init__(self, root: str, timeout: float = 1800) -> None:
        self._beats: list[tuple[float, float]] = []  # (sent, waited) of each /healthz
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(root, timeout), daemon=True)
        self._thread.start()

    def _beat(self, root: str, timeout: float) -> None:
        with httpx.Client(timeout=timeout) as client:
            while not self._done.is_set():
                sent = time.perf_counter()
                client.get(f"{root}/healthz")
                self._beats.append((sent, time.perf_counter() - sent))
                time.sleep(0.02)

    def longest_wait_ms(self, began: float, ended: float) -> int:
        """The longest /healthz wait that overlapped [began, ended], once one sent after it is back."""
        while not self._beats or self._beats[-1][0] < ended:
            time.sleep(0.01)
        return round(1000 * max((w for sent, w in self._beats if began <= sent + w and sent <= ended), default=0))

    def stop(self) -> None:
        self._done.set()
