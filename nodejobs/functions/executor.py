"""``JobExecutor``: a ``concurrent.futures.Executor`` whose calls are nodejobs function jobs.

``jobs.executor(**run_options)`` makes one. ``submit`` returns a ``JobFuture`` (a real ``Future``, with
the job's id as ``job_id``); a watcher thread completes the futures as their jobs end, so ``result``,
``done``, ``add_done_callback``, ``concurrent.futures.wait`` and ``as_completed`` work as with any
executor. A future's exception is the function's own (its remote traceback as the cause), as with
``ProcessPoolExecutor``. The jobs outlive the executor and the process: ``jobs.result(job_id)`` later.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, InvalidStateError
from concurrent.futures import wait as futures_wait
from typing import Any, Protocol

from nodejobs.errors import FunctionError, NodeJobsError, RemoteTraceback
from nodejobs.functions import callfile as calls
from nodejobs.model.listings import JobRecordDict
from nodejobs.model.records import JobRecord
from nodejobs.model.states import JobStatus

log = logging.getLogger(__name__)

S = JobStatus
WATCH_STEP = 0.5  # the watcher looks again at least this often (new futures, cancellations)


class CallJobs(Protocol):
    """What an executor needs of the ``Jobs`` that runs its calls."""

    def submit_pickled(self, fn: Any, payload: bytes, run_options: dict[str, Any]) -> JobRecord:
        """Submit a pickled call as a job; its record."""
        ...

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """The return value of an ended function job (``FunctionError`` if the function raised)."""
        ...

    def get_status(self, job_id: str) -> JobRecord | None:
        """The up-to-date record of ``job_id``, or None."""
        ...

    def stop(self, job_id: str, grace: float | None = None) -> JobRecord | None:
        """Stop a job; its final record."""
        ...

    def wait_all(
        self, job_ids: Iterable[str] | None = None, timeout: float | None = None, any: bool = False
    ) -> JobRecordDict:
        """Block until every job (with ``any``: one) of ``job_ids`` has ended; their records."""
        ...


class JobFuture(Future):
    """The future of one function job; ``job_id`` names the job."""

    def __init__(self, jobs: CallJobs, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self._jobs = jobs
        self._cancelling = False

    def cancel(self) -> bool:
        """Cancel the call if its job has not started yet (it leaves the queue, ``stopped``); False if it
        runs or has ended, as for any future (``jobs.stop(job_id)`` stops a running one)."""
        with self._condition:
            if self.done():
                return self.cancelled()
            self._cancelling = True
        try:
            record = self._jobs.get_status(self.job_id)
            if record is None or record.status != S.c_queued:
                return False
            record = self._jobs.stop(self.job_id)
            if record is None or record.status != S.c_stopped or not super().cancel():
                return False
            self.set_running_or_notify_cancel()  # wakes wait() and as_completed(), as an executor must
            return True
        finally:
            self._cancelling = False

    def running(self) -> bool:
        """Whether the job is running now."""
        if self.done():
            return False
        record = self._jobs.get_status(self.job_id)
        return record is not None and record.status in (S.c_starting, S.c_running, S.c_stopping)

    def __repr__(self) -> str:
        return f"<JobFuture {self.job_id} {self._state.lower()}>"


def complete(future: JobFuture, jobs: CallJobs) -> None:
    """Set the outcome of an ended job's future from its result (unless it was cancelled meanwhile)."""
    try:
        outcome, failed = jobs.result(future.job_id, timeout=0), None
    except FunctionError as exc:
        outcome, failed = None, exc.exception if exc.exception is not None else exc
        if failed is not exc:
            failed.__cause__ = RemoteTraceback(exc.remote_traceback)
    except Exception as exc:  # no result (stopped, ...), or its file cannot be read: the future says why
        outcome, failed = None, exc
    try:
        if failed is None:
            future.set_result(outcome)
        else:
            future.set_exception(failed)
    except InvalidStateError:  # cancelled meanwhile
        pass


class JobExecutor(Executor):
    """Runs each submitted call as a function job of ``jobs`` with ``run_options``."""

    def __init__(self, jobs: CallJobs, **run_options: Any) -> None:
        self._jobs = jobs
        self._options = run_options
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: dict[str, JobFuture] = {}
        self._shutdown = False
        self._watcher: threading.Thread | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JobFuture:
        """Submit ``fn(*args, **kwargs)`` as a job; its future. ``UnpicklableError``: nothing submitted."""
        return self._submit_payload(fn, calls.pickle_call(fn, args, kwargs))

    def _submit_payload(self, fn: Any, payload: bytes) -> JobFuture:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            record = self._jobs.submit_pickled(fn, payload, self._options)
            future = JobFuture(self._jobs, record.self_id)
            self._pending[record.self_id] = future
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="nodejobs-executor", daemon=True)
                self._watcher.start()
        self._wake.set()
        return future

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:  # fmt: skip
        """As ``Executor.map``: results in the order of the inputs, ``TimeoutError`` once ``timeout`` s
        have passed since the call; every call is pickled before any is submitted."""
        end = None if timeout is None else time.monotonic() + timeout
        payloads = [calls.pickle_call(fn, args, {}) for args in zip(*iterables)]
        futures = [self._submit_payload(fn, payload) for payload in payloads]

        def results() -> Iterator[Any]:
            try:
                futures.reverse()
                while futures:
                    future = futures.pop()
                    try:
                        yield future.result(None if end is None else end - time.monotonic())
                    finally:
                        future.cancel()
            finally:
                for future in futures:
                    future.cancel()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more submissions; with ``cancel_futures`` the queued calls are cancelled; with ``wait``,
        block until every call has ended. The jobs keep running either way."""
        with self._lock:
            self._shutdown = True
            pending = list(self._pending.values())
        if cancel_futures:
            for future in pending:
                future.cancel()
        self._wake.set()
        if wait:
            futures_wait(pending)  # a cancelled future counts as done; no call's exception is raised

    def _watch(self) -> None:
        """Complete each future when its job ends (the watcher thread)."""
        while True:
            with self._lock:
                for job_id in [i for i, f in self._pending.items() if f.done()]:
                    del self._pending[job_id]
                waiting = [f for f in self._pending.values() if not f._cancelling]
                if not self._pending and self._shutdown:
                    self._watcher = None
                    return
            if not waiting:
                self._wake.wait(WATCH_STEP)
                self._wake.clear()
                continue
            try:
                records = self._jobs.wait_all([f.job_id for f in waiting], timeout=WATCH_STEP, any=True)
            except TimeoutError:
                continue
            except (NodeJobsError, OSError) as exc:  # e.g. the Jobs was closed: nothing more to learn
                log.warning("cannot follow the executor's jobs: %s", exc)
                for future in waiting:
                    with contextlib.suppress(InvalidStateError):
                        future.set_exception(exc)
                continue
            for future in waiting:
                record = records.get(future.job_id)
                if record is not None and not record.is_active and not future._cancelling:
                    complete(future, self._jobs)
