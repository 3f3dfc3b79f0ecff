"""Request threads behind a bounded queue.

Jobs run in arrival order on ``concurrency`` threads (the server uses one per row the scheduler
may decode at once, so a full batch never waits for a free thread): a job decodes its regions,
checks its prompt, then hands the model work to the one scheduler thread
(:mod:`osprey.serve.scheduler`) and waits. ``submit`` never blocks: when ``queue_size`` jobs
already wait for a thread it raises :class:`QueueFull` (the API answers 429); after ``close`` it
raises :class:`ShuttingDown` (503). A job can be cancelled: if it has not started it is dropped;
if it runs, its :class:`CancelToken` is set and the scheduler's check (one per generated token)
stops it.
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
    def __init__(self, queue_size: int, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency}: expected >= 1 request thread")
        self._jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._running = 0
        self._threads = [threading.Thread(target=self._loop, name=f"osprey-request-{i}", daemon=True)
                         for i in range(concurrency)]
        for thread in self._threads:
            thread.start()

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    @property
    def busy(self) -> bool:
        return self._running > 0

    @property
    def running(self) -> int:
        """Jobs on a request thread now (decoding regions, waiting for the scheduler, streaming)."""
        return self._running

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
            if item is None:  # the stop mark: pass it on to the next thread
                with contextlib.suppress(queue.Full):
                    self._jobs.put_nowait(None)
                return
            fn, future, token = item
            if token.cancelled:
                if not future.done():
                    future.set_exception(Cancelled("request timed out while waiting in the queue"))
                continue
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._running += 1
            try:
                future.set_result(fn(token))
            except BaseException as err:
                future.set_exception(err)
            finally:
                with self._lock:
                    self._running -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new jobs, cancel waiting ones, let the running ones finish (up to ``timeout`` in all)."""
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
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
