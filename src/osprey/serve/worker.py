"""One model worker thread behind a bounded queue.

The model is not thread-safe and a CPU or one GPU runs one generation at a time anyway, so every
job runs on a single thread, in arrival order. ``submit`` never blocks: when ``queue_size`` jobs
already wait it raises :class:`QueueFull` (the API answers 429); after ``close`` it raises
:class:`ShuttingDown` (503). A job can be cancelled: if it has not started it is dropped; if it
runs, its :class:`CancelToken` is set and the job's own checks (one per generated token) stop it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    pass


class ShuttingDown(RuntimeError):
    pass


class Cancelled(RuntimeError):
    pass


class CancelToken:
    """Set by the caller (timeout, client gone); checked by the job between tokens."""

    def __init__(self, deadline: float | None = None) -> None:
        self._event = threading.Event()
        self.deadline = deadline  # time.monotonic() after which the job stops by itself

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self._event.set()
        return self._event.is_set()

    def check(self, *_: object) -> None:
        """Raise :class:`Cancelled` if cancelled; takes and ignores any callback arguments."""
        if self.cancelled:
            raise Cancelled("request cancelled (deadline passed or client gone)")


class ModelWorker:
    def __init__(self, queue_size: int) -> None:
        self._jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="osprey-model-worker", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def submit(self, fn: Callable[[CancelToken], Any], timeout_s: float | None = None) -> tuple[Future, CancelToken]:
        """Queue ``fn(cancel_token)``; its result or exception lands in the returned future.

        ``timeout_s`` counts from now: a job still waiting then is dropped, a running one is stopped
        at its next check."""
        if self._closed.is_set():
            raise ShuttingDown("the server is shutting down")
        future: Future = Future()
        token = CancelToken(None if timeout_s is None else time.monotonic() + timeout_s)
        try:
            self._jobs.put_nowait((fn, future, token))
        except queue.Full:
            raise QueueFull(f"{self._jobs.maxsize} requests are already waiting") from None
        return future, token

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            fn, future, token = item
            if token.cancelled:
                if not future.done():
                    future.set_exception(Cancelled("request timed out while waiting in the queue"))
                continue
            if not future.set_running_or_notify_cancel():
                continue
            self._busy.set()
            try:
                future.set_result(fn(token))
            except BaseException as err:
                future.set_exception(err)
            finally:
                self._busy.clear()

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new jobs, cancel waiting ones, let the running one finish (up to ``timeout``)."""
        self._closed.set()
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[2].cancel()
                item[1].set_exception(ShuttingDown("the server shut down before this request ran"))
        with contextlib.suppress(queue.Full):  # emptied just above
            self._jobs.put_nowait(None)
        self._thread.join(timeout)
