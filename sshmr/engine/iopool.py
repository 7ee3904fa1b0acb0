"""A host's file-transfer threads: up to ``IO_THREADS`` per host, started as transfers
overlap (each uses an SFTP session of its own), so a push and a fetch to one host run at
once while the master's loop never waits on the network."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

IO_THREADS = 3  # per host: transfers to and from it overlap (each on an SFTP session)


class IoPool:
    """Runs callables off the master's thread; ``post(gen, tag, outcome)`` gets each one's
    result or exception, tagged with the connection generation it was submitted under."""

    def __init__(self, name: str, post: Callable[[int, Any, Any], None]) -> None:
        self.name = name
        self._post = post
        self._tasks: queue.SimpleQueue[tuple[int, Callable[[], Any], Any] | None] | None = None
        self._lock = threading.Lock()  # the threads: started, idle; tasks waiting
        self._threads = self._idle = self._waiting = 0

    def submit(self, gen: int, fn: Callable[[], Any], tag: Any) -> None:
        with self._lock:
            if self._tasks is None:
                self._tasks = queue.SimpleQueue()
            self._waiting += 1
            start = self._waiting > self._idle and self._threads < IO_THREADS
            if start:
                self._threads += 1
                self._idle += 1
            tasks = self._tasks
        if start:
            threading.Thread(target=self._loop, args=(tasks,), daemon=True,
                             name=f"sshmr-io-{self.name}").start()
        tasks.put((gen, fn, tag))

    def stop(self) -> None:
        """Each thread ends once the transfers submitted before are done."""
        with self._lock:
            tasks, threads = self._tasks, self._threads
        if tasks is not None:
            for _ in range(threads):
                tasks.put(None)

    def _loop(self, tasks: queue.SimpleQueue) -> None:
        while True:
            item = tasks.get()
            if item is None:
                return
            with self._lock:
                self._waiting -= 1
                self._idle -= 1
            gen, fn, tag = item
            try:
                outcome: Any = fn()
            except Exception as exc:  # noqa: BLE001 - handed to the master
                outcome = exc
            with self._lock:
                self._idle += 1
            self._post(gen, tag, outcome)
