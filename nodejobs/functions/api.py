"""Python functions as jobs: ``submit``, ``result``, ``map_fn``; ``Jobs`` holds a ``FunctionJobs``.

A function job is an ordinary job: its command is ``python -m nodejobs.functions <call file>`` (the
submitting interpreter, its working directory), started through ``Jobs.run``, so every backend runs
it. Its record's ``call`` names the call file and its ``command`` shows the function (``train(...)``).
Loading a result unpickles it, which runs code: results are only read from this database's directory.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nodejobs.errors import FunctionError, InvalidInputError, NoResultError, RemoteTraceback, ResultFileError
from nodejobs.functions import callfile as calls
from nodejobs.model.records import JobRecord
from nodejobs.model.states import JobStatus
from nodejobs.store.db import JobDB
from nodejobs.store.files import remove_if_exists

log = logging.getLogger(__name__)

S = JobStatus
OWN_OPTIONS = ("prefix",)  # run options of function jobs that are not ``run``'s
NOT_OPTIONS = ("command", "call")  # ``run`` parameters that submit sets itself


@dataclass(frozen=True)
class FunctionCall:
    """What ``Jobs.run`` needs to run a pickled call: the call file, an id base, what to show."""

    path: str  # the call file
    name: str  # the base of the job's id: train -> train-1
    label: str  # the record's command: train(...)

    @property
    def command(self) -> list[str]:
        """The job's program: this interpreter running ``nodejobs.functions`` on the call file."""
        return [sys.executable, "-m", "nodejobs.functions", self.path]


class JobsFacade(Protocol):
    """What function jobs need of the ``Jobs`` that runs them."""

    jobdb: JobDB

    def run(self, command: str | Sequence[str], job_id: str | None = None, **options: Any) -> JobRecord:
        """Start a job (``Jobs.run``); function jobs pass ``call``."""
        ...

    def require(self, job_id: str) -> JobRecord:
        """The up-to-date record of ``job_id``; ``JobNotFoundError`` if there is none."""
        ...

    def wait(self, job_id: str, timeout: float | None = None) -> Any:
        """Block until the job ends; its final record."""
        ...

    def tail(self, job_id: str, n: int = 10, stream: str = "out") -> str:
        """The last ``n`` lines of a job's stdout or stderr."""
        ...


def function_label(fn: Any) -> str:
    """How listings show a call of ``fn``: ``train(...)``, ``mymod.train(...)``."""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{name}(...)" if module in (None, "__main__", "builtins") else f"{module}.{name}(...)"


def _id_base(fn: Any, prefix: str | None) -> str:
    name = prefix or getattr(fn, "__name__", None) or type(fn).__name__
    return re.sub(r"[^A-Za-z0-9_]+", "-", str(name)).strip("-")[:20] or "function"


class FunctionJobs:
    """The function jobs of ``jobs``: pickled calls run as ordinary jobs, their results read back."""

    def __init__(self, jobs: JobsFacade) -> None:
        self.jobs = jobs

    def submit_call(
        self, fn: Callable[..., Any], args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None,
        **run_options: Any,
    ) -> JobRecord:  # fmt: skip
        """Run ``fn(*args, **kwargs)`` as a job with run options: ``job_id`` or ``prefix`` (ids
        ``prefix-1``, ...), and every option of ``run`` (``group``, ``after``, ``tags``, ``timeout``, ...)."""
        self.check_run_options(run_options)
        payload = calls.pickle_call(fn, tuple(args), dict(kwargs or {}))
        return self.submit_pickled(fn, payload, run_options)

    def map_fn(self, fn: Callable[[Any], Any], iterable: Iterable[Any], **run_options: Any) -> list[str]:
        """One job ``fn(item)`` per item (ids ``<prefix or fn's name>-N``); their ids, in order. Every
        call is pickled before any is submitted."""
        self.check_run_options(run_options)
        if "job_id" in run_options:
            raise InvalidInputError("map_fn: give a prefix, not a job_id (each item is a job of its own)")
        payloads = [calls.pickle_call(fn, (item,), {}) for item in iterable]
        return [self.submit_pickled(fn, payload, run_options).self_id for payload in payloads]

    def check_run_options(self, options: dict[str, Any]) -> None:
        """``ValueError`` unless every name is an option of ``run`` (or ``prefix``); if ``run`` takes
        more keywords (a backend's resources), those are passed on for ``run`` to check."""
        parameters = inspect.signature(self.jobs.run).parameters
        more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        known = [n for n, p in parameters.items() if n not in NOT_OPTIONS and p.kind is not p.VAR_KEYWORD]
        unknown = set(options) - set(known) - set(OWN_OPTIONS)
        if more:
            unknown &= set(NOT_OPTIONS)
        if unknown:
            raise InvalidInputError(
                f"unknown run option(s) {', '.join(map(repr, sorted(unknown)))}; "
                f"one of: {', '.join([*known, *OWN_OPTIONS])}"
            )

    def submit_pickled(self, fn: Any, payload: bytes, run_options: dict[str, Any]) -> JobRecord:
        """Submit a call pickled by ``callfile.pickle_call`` (run options checked): its call file, then
        its job; if ``run`` refuses it, the call file is removed again."""
        options = dict(run_options)
        name = _id_base(fn, options.pop("prefix", None))
        logdir = self.jobs.jobdb.logdir
        path = os.path.join(logdir, f"{name}-{uuid.uuid4().hex[:12]}{calls.CALL_SUFFIX}")
        meta = {"name": function_label(fn), "sys_path": [os.path.abspath(p or ".") for p in sys.path]}
        calls.write_file(path, calls.CALL_MAGIC, meta, payload)
        function = FunctionCall(path, name, function_label(fn))
        given = options.get("job_id")
        replaced = self.jobs.jobdb.get(given) if given else None
        try:
            record = self.jobs.run(function.command, call=function, **options)
        except BaseException:
            for leftover in calls.files_of(path, logdir):  # refused: nothing is left behind
                remove_if_exists(leftover)
            raise
        if replaced is not None and replaced.call and replaced.call != path:  # an ended run's, replaced
            for leftover in calls.files_of(replaced.call, logdir):
                remove_if_exists(leftover)
        return record

    @staticmethod
    def call_of(record: JobRecord) -> FunctionCall | None:
        """The pickled call a record's job runs (``rerun`` runs it again), or None: not a function job."""
        if not record.call:
            return None
        return FunctionCall(record.call, record.self_id, record.command or "")

    # -- results -----------------------------------------------------------------------------------

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """The return value of function job ``job_id``, once it has ended (waiting up to ``timeout`` s;
        None: no limit, else ``TimeoutError``). If the function raised: ``FunctionError`` with its
        traceback text. ``NoResultError``: not a function job, or it ended with no result (stopped,
        killed, ...). ``ResultFileError``: its result file is missing, damaged or of another version.
        """
        record = self.jobs.require(job_id)
        if not record.call:
            raise NoResultError(
                f"job {job_id!r} is not a function job (it runs {record.command!r}); read its output instead"
            )
        record = self.jobs.wait(job_id, timeout)
        path = calls.result_path(record.call)
        if record.status not in (S.c_finished, S.c_failed):
            why = f": {record.reason}" if record.reason else ""
            raise NoResultError(f"job {job_id!r} ended {record.status}{why}; it has no result")
        if record.status == S.c_failed and not os.path.exists(path):
            tail = self.jobs.tail(job_id, 1, "err").strip()
            said = f"; its stderr ends: {tail}" if tail else ""
            raise NoResultError(f"job {job_id!r} failed (exit {record.exit_code}) without a result{said}")
        outcome = calls.read_result(path)
        if outcome.run_id and record.run_id and outcome.run_id != record.run_id:
            raise ResultFileError(f"{path} holds the result of an earlier run of job {job_id!r}")
        if outcome.ok:
            return outcome.value
        error = FunctionError(job_id, outcome.error, outcome.exception, outcome.traceback)
        raise error from RemoteTraceback(outcome.traceback)
