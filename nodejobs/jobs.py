"""``Jobs``: the nodejobs API — run, stop, inspect and follow background jobs. (``default_db_path`` is
importable from here too, as in the original nodejobs.)"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from nodejobs.backends import Backends, check_backend_name
from nodejobs.backends.base import Backend
from nodejobs.engine import waiting
from nodejobs.engine.lifecycle import Lifecycle
from nodejobs.errors import InvalidInputError, JobExistsError, JobNotFoundError, JobStillRunningError
from nodejobs.functions.api import FunctionCall, FunctionJobs
from nodejobs.functions.executor import JobExecutor
from nodejobs.model.ids import numbered, readable_base, sweep
from nodejobs.model.listings import JobRecordDict
from nodejobs.model.options import DEFAULT_GROUP, check_after, check_group, check_limit
from nodejobs.model.records import JobFilter, JobRecord
from nodejobs.model.resources import check_resources
from nodejobs.model.resources import loads as load_resources
from nodejobs.model.states import ACTIVE_STATUSES
from nodejobs.model.submission import Submission, check_envs_again
from nodejobs.processes import Processes
from nodejobs.queue import handoff
from nodejobs.queue.dispatcher import Queue
from nodejobs.report.usage import JobUsage, JobUsageDict
from nodejobs.store import files as logs
from nodejobs.store.db import Changes, JobDB
from nodejobs.store.paths import default_db_path
from nodejobs.store.query import JobQuery, TimeSpec


class Jobs:
    """Run commands as detached jobs recorded in ``<db_path>/jobs.db``.

    ``db_path=None`` means ``default_db_path()``. Use as a context manager, or call ``close()``,
    to stop the reaper thread; jobs keep running either way.
    """

    def __init__(
        self,
        db_path: str | None = None,
        *,
        startup_window: float = 0.05,
        grace: float = 3.0,
        reaper: bool = True,
        backend: str | Backend = "local",
        resources: dict[str, Any] | None = None,
    ) -> None:
        given = backend if isinstance(backend, Backend) else None
        self.backend = backend.name if isinstance(backend, Backend) else check_backend_name(backend)
        self.db_path = os.path.abspath(os.path.expanduser(db_path or default_db_path()))
        self.jobdb = JobDB(self.db_path)
        self.grace = grace
        self.resources = check_resources(resources)  # defaults for jobs of backends that take resources
        self.backends = Backends(reaper=reaper, given=given)
        self.backends(self.backend)  # made now: the local backend's reaper thread starts with us
        self.lifecycle = Lifecycle(self.jobdb, self.backends, startup_window)
        self.queue = Queue(self.jobdb, self.lifecycle)
        self.lifecycle.on_end = self.queue.on_end_command()
        self.processes = Processes(self.jobdb, grace=grace, lifecycle=self.lifecycle, backends=self.backends)
        self.functions = FunctionJobs(self)

    # -- the contract of the original nodejobs ---------------------------------------------------

    def run(
        self,
        command: str | Sequence[str],
        job_id: str | None = None,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        *,
        keep_leftovers: bool = False,
        group: str = DEFAULT_GROUP,
        after: str | Sequence[str] | None = None,
        at: datetime | float | str | None = None,
        timeout: float | None = None,
        tags: dict[str, Any] | None = None,
        call: FunctionCall | None = None,
        **resources: Any,
    ) -> JobRecord:
        """Start ``command`` (a list runs directly, a string through ``/bin/sh -c``) as ``job_id``.

        Without ``job_id`` a readable one is made from the command. Returns the record: ``running``,
        or already ``finished``/``failed`` if it ended at once, or ``failed_start`` (with ``reason``) if
        it could not be started. Raises ``JobExistsError`` if a job with that id is still active.
        When the job's program ends, processes it left behind are ended too, unless ``keep_leftovers``.

        A job that cannot start yet is ``queued`` with a ``reason``: its ``group`` is at its limit
        (``set_limit``), a job it runs ``after`` has not finished, or its start time ``at`` (a
        timezone-aware datetime, or seconds from now) has not come. ``timeout`` (seconds) ends it as
        ``timed_out``. ``tags`` (name -> value) are stored and become DataFrame columns. ``call`` is
        given by ``submit``: a function job, its id and command from the function (``train(...)``).

        ``resources`` are for a backend with a scheduler (Slurm): ``cpus``, ``mem``, ``time``, ``gpus``,
        ``partition``, ``slurm_opts`` (more sbatch options), over the defaults given to ``Jobs``. On
        Slurm, ``after`` and ``at`` become Slurm's own dependency and start time where they can.
        """
        submission = self._submission(
            group=group, at=at, timeout=timeout, tags=tags, after=after, resources=resources, envs=envs,
            cwd=cwd, keep_leftovers=keep_leftovers, call=call.path if call else None,
            label=call.label if call else None,
        )  # fmt: skip
        queued, submission = self._plan(submission)
        if job_id is not None:
            return self._submit(command, job_id, queued, True, submission)
        while True:
            job_id = self.new_job_id(call.name if call else command)
            try:
                return self._submit(command, job_id, queued, False, submission)
            except JobExistsError:
                continue  # another process took that name between choosing and claiming it

    def _submission(self, resources: dict[str, Any], **options: Any) -> Submission:
        """The checked submission of the options of ``run`` (``ValueError`` names a bad one), its
        resources over this ``Jobs``' defaults where the backend takes resources."""
        submission = Submission.make(backend=self.backend, resources=resources, **options)
        return submission.with_defaults(self.resources, self.backends(self.backend).capabilities.resources)

    def _plan(self, submission: Submission) -> tuple[bool, Submission]:
        """Whether ``submission`` waits in nodejobs' queue; if not, with what its backend takes over."""
        backend = self.backends(self.backend)
        limited = submission.group in self.jobdb.limits()
        deps = list(submission.after)
        queued, taken = handoff.plan(self.jobdb, self.lifecycle, backend, deps, submission.start_at, limited)
        return queued, submission if queued else dataclasses.replace(submission, backend_options=taken)

    def _submit(
        self, command: Any, job_id: str, queued: bool, replace: bool, submission: Submission
    ) -> JobRecord:
        if not queued:
            record = self.lifecycle.run(command, job_id, submission, replace=replace)
            self._dispatch()
            return record
        record, launch = self.lifecycle.prepare(command, job_id, submission)
        return self.queue.submit(record, launch, replace)

    def set_limit(self, group: str, n: int | None) -> None:
        """Let at most ``n`` jobs of ``group`` run at once (None: unlimited, every group's default).
        Stored in the database; groups need no creating. Each job of a limited group gets its slot
        (0..n-1, unique among the group's running jobs) as ``NODEJOBS_SLOT``."""
        self.jobdb.set_limit(check_group(group), check_limit(n))
        self._dispatch()

    def limits(self) -> dict[str, int]:
        """Group -> limit, for every limited group."""
        return self.jobdb.limits()

    def map(
        self,
        template: str,
        params: Iterable[dict[str, Any]],
        *,
        prefix: str | None = None,
        group: str | None = None,
        limit: int | None = None,
        after: str | Sequence[str] | None = None,
        timeout: float | None = None,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        **resources: Any,
    ) -> JobRecordDict:
        """Submit a sweep: one job per dict of ``params``, its command ``template.format(**params)``
        (values shell-quoted), its id ``<prefix>-<name><value>-...`` (prefix: from the command), its
        params as tags, in ``group`` (default: the prefix), limited to ``limit`` at once if given.
        Every command and id is checked before any job is submitted."""
        base = prefix or readable_base(template)
        group = check_group(group or base)
        planned = sweep(template, [dict(p) for p in params], base)
        check_after(after)
        if limit is not None:
            self.set_limit(group, limit)
        out = JobRecordDict()
        together = []  # started at once where the backend can (Slurm: one array)
        arrays = self.backends(self.backend).capabilities.arrays
        for job_id, command, p in planned:
            submission = self._submission(
                group=group, after=after, timeout=timeout, tags=p or None, envs=envs, cwd=cwd,
                resources=resources,
            )  # fmt: skip
            queued, submission = self._plan(submission)
            if arrays and not queued:
                together.append((command, job_id, submission))
            else:
                out[job_id] = self._submit(command, job_id, queued, True, submission)
        for record in self.lifecycle.run_many(together) if together else []:
            out[record.self_id] = record
        return JobRecordDict({job_id: out[job_id] for job_id, _, _ in planned})

    def stop(self, job_id: str, grace: float | None = None) -> JobRecord | None:
        """Stop a job's whole process tree; its final record, or None for an unknown id.

        A queued job leaves the queue (``stopped``, "stopped while queued"). A job that already ended
        has whatever it left running ended too.
        """
        record = self.lifecycle.stop(job_id, self.grace if grace is None else grace)
        self._dispatch()
        return self.jobdb.get(job_id) if record is not None else None

    def get_status(self, job_id: str) -> JobRecord | None:
        """The up-to-date record of ``job_id``, or None."""
        self._dispatch()
        return self.lifecycle.refresh(self.jobdb.get(job_id))

    def _dispatch(self) -> None:
        """Move the queue, if jobs are queued (one ``stat`` otherwise): every call heals it."""
        if self.queue.has_queued():
            self.queue.dispatch()

    def list_status(
        self,
        filter: JobFilter | dict | None = None,
        *,
        status: str | Iterable[str] | None = None,
        id_glob: str | None = None,
        id_prefix: str | None = None,
        since: TimeSpec | None = None,
        until: TimeSpec | None = None,
        order: str = "oldest",
        limit: int | None = None,
    ) -> JobRecordDict:
        """Up-to-date records matching ``filter`` (any JobRecord fields, by equality) and the criteria:
        ``status`` (one, several, ``"active"``, ``"ended"``), an id glob (``"train-*"``) or prefix, a range
        of start times (``since``/``until``: a datetime, an age such as ``"2h"``, or seconds ago).
        ``order="newest"`` lists the newest first; ``limit`` keeps the first N. All done by SQLite; only
        the active jobs are brought up to date first, so the cost follows what is listed, not the history.
        """
        query = JobQuery.make(filter, status=status, id_glob=id_glob, id_prefix=id_prefix, since=since,
                              until=until, order=order, limit=limit)  # fmt: skip
        self.lifecycle.refresh_active()
        self._dispatch()
        return self.jobdb.list_status(query)

    def count(
        self, filter: JobFilter | dict | None = None, *, status: str | Iterable[str] | None = None,
        id_glob: str | None = None, since: TimeSpec | None = None, until: TimeSpec | None = None,
    ) -> int:  # fmt: skip
        """How many jobs match (the criteria of ``list_status``), without reading them."""
        query = JobQuery.make(filter, status=status, id_glob=id_glob, since=since, until=until)
        return self.jobdb.count(query)

    def job_logs(self, job_id: str) -> tuple[str, str]:
        """``(stdout, stderr)`` of a job."""
        return self.jobdb.job_logs(job_id)

    # -- more --------------------------------------------------------------------------------------

    def tail(self, job_id: str, n: int = 10, stream: str = "out") -> str:
        """The last ``n`` lines of stdout (``"out"``) or stderr (``"err"``), read from the end."""
        return self.jobdb.tail(self.require(job_id).self_id, n, stream)

    def wait(self, job_id: str | Sequence[str], timeout: float | None = None) -> Any:
        """Block until the job ends; its final record. Raises ``TimeoutError`` after ``timeout`` s
        (None or ``math.inf``: no limit). A list of ids waits for all of them (``wait_all``)."""
        if not isinstance(job_id, str):
            return self.wait_all(job_id, timeout)
        return waiting.wait_one(self.require, self.lifecycle, job_id, timeout)

    def wait_all(
        self, job_ids: Iterable[str] | None = None, timeout: float | None = None, any: bool = False
    ) -> JobRecordDict:
        """Block until every job of ``job_ids`` (default: every active job) has ended, or with ``any``
        until one has; their records. ``TimeoutError`` after ``timeout`` s. Unknown ids fail first."""
        ids = list(job_ids) if job_ids is not None else self.ids(active=True)
        return waiting.wait_all(self.require, self.lifecycle, ids, timeout, any)

    def follow(self, job_id: str, stream: str = "out", from_start: bool = True) -> Iterator[str]:
        """Yield the job's output as it is written, until the job has ended and all is read."""
        return waiting.follow(self.require, self.lifecycle, job_id, stream, from_start)

    def rerun(
        self, job_id: str, envs: dict[str, str] | None = None, without_env: bool = False
    ) -> JobRecord:
        """Run an ended job again: same id, command and directory.

        Environment values are never stored, so a job that had ``envs`` needs them again (``envs``,
        naming the same keys) or ``without_env=True``; otherwise ``MissingEnvError`` names the keys.
        """
        record = self.require(job_id)
        if record.is_active:
            raise JobStillRunningError(f"job {job_id!r} is still {record.status}; stop it first")
        if not without_env:
            check_envs_again(record, envs)
        call = self.functions.call_of(record)  # a function job runs its pickled call again
        command = record.command if record.shell else shlex.split(record.command or "")
        return self.run(
            call.command if call else command, job_id, cwd=record.cwd, envs=envs,
            group=record.group or DEFAULT_GROUP, timeout=record.timeout,
            tags=record.tag_values or None, call=call, **load_resources(record.resources),
        )  # fmt: skip

    def remove(self, job_id: str) -> None:
        """Delete an ended job's record and files."""
        record = self.require(job_id)
        if record.is_active:
            raise JobStillRunningError(f"job {job_id!r} is still {record.status}; stop it first")
        self._delete(record)

    def clean(
        self, older_than: timedelta | float | str | None = None, status: str | Iterable[str] | None = None
    ) -> list[str]:
        """Delete ended jobs with their files — all of them, or those that ended more than ``older_than``
        ago (a timedelta, seconds, or ``"30d"``) and have ``status`` (e.g. ``"finished"``); the ids removed.
        """
        query = JobQuery.make(status=status or "ended", older_than=older_than)
        if set(query.statuses or ()) & set(ACTIVE_STATUSES):
            raise InvalidInputError("clean deletes ended jobs only; stop active jobs first")
        self.lifecycle.refresh_active()
        ended = self.jobdb.ids(query)
        for job_id in ended:
            record = self.jobdb.get(job_id)
            if record is not None:
                self._delete(record)
        return ended

    def _delete(self, record: JobRecord) -> None:
        """Delete an ended job's record and files, with those its backend keeps beside them."""
        backend = self.backends(record.backend or "local")
        self.jobdb.delete(record.self_id, backend.side_suffixes)

    # -- what jobs cost, and how the history changes -------------------------------------------------

    def usage(self) -> JobUsageDict:
        """CPU %, resident memory (RSS, bytes), threads of every running job's whole process tree, newest
        first; all jobs measured in one pass by their backend. Each call also raises the jobs' recorded
        peak (``max_rss``) where it is higher: peaks are those seen while someone was sampling."""
        active = [r for r in reversed(self.lifecycle.refresh_active()) if r is not None and r.is_active]
        used = self.lifecycle.usage(active)
        return JobUsageDict({r.self_id: JobUsage.of(r, used[r.self_id]) for r in active if r.self_id in used})

    def changes(self, since: int = 0) -> Changes:
        """Records written and ids deleted after change number ``since`` (0: all), the number of records,
        and the change number to pass next time; the cost follows what changed, not the history. Active
        jobs are not brought up to date first (``list_status`` or ``usage`` do that)."""
        return self.jobdb.changes(since)

    def timeline(self, filter: JobFilter | dict | None = None, **criteria: Any) -> Any:
        """A matplotlib figure: each job (of ``list_status(filter, **criteria)``) a bar from start to end,
        coloured by status, labelled by id. Needs matplotlib (``pip install 'nodejobs[plot]'``)."""
        from nodejobs.report.timeline import draw_timeline

        return draw_timeline(self.list_status(filter, **criteria).values())

    # -- Python functions as jobs (``functions.api``) -----------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JobRecord:
        """Run ``fn(*args, **kwargs)`` as a job (every argument goes to ``fn``); its record, as ``run``
        returns it. ``jobs.result(id)`` gets the value. An unpicklable call raises ``UnpicklableError``
        with nothing recorded. Run options (id, group, ...): ``submit_call`` or ``executor``."""
        return self.functions.submit_call(fn, args, kwargs)

    def submit_call(
        self, fn: Callable[..., Any], args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None,
        **run_options: Any,
    ) -> JobRecord:  # fmt: skip
        """``submit`` with run options: ``job_id`` or ``prefix`` (ids ``prefix-1``, ...), and every
        option of ``run`` (``group``, ``after``, ``tags``, ``timeout``, ...)."""
        return self.functions.submit_call(fn, args, kwargs, **run_options)

    def map_fn(self, fn: Callable[[Any], Any], iterable: Iterable[Any], **run_options: Any) -> list[str]:
        """One job ``fn(item)`` per item (ids ``<prefix or fn's name>-N``); their ids, in order. Every
        call is pickled before any is submitted."""
        return self.functions.map_fn(fn, iterable, **run_options)

    def executor(self, **run_options: Any) -> JobExecutor:
        """A ``concurrent.futures.Executor`` whose calls are jobs run with these options (``group``,
        ``prefix``, ``tags``, ``timeout``, ... — every option of ``run``)."""
        self.functions.check_run_options(run_options)
        return JobExecutor(self, **run_options)

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """The return value of function job ``job_id`` once it has ended (``FunctionJobs.result``)."""
        return self.functions.result(job_id, timeout)

    def submit_pickled(self, fn: Any, payload: bytes, run_options: dict[str, Any]) -> JobRecord:
        """Submit a call pickled by ``callfile.pickle_call`` (run options checked) as a function job."""
        return self.functions.submit_pickled(fn, payload, run_options)

    # -- what the faces (CLI, magics, dashboard) need, so they never reach into the database ----

    def log_path(self, job: str | JobRecord, stream: str = "out") -> str:
        """The path of a job's stdout (``"out"``) or stderr (``"err"``) file; ``job`` is its id or record."""
        record = job if isinstance(job, JobRecord) else self.require(job)
        return self.jobdb.log_paths(record)[logs.stream_index(stream)]

    def script_path(self, job_id: str, extension: str) -> str:
        """Where the script of a ``%%job`` cell for ``job_id`` is kept (``extension``: ".sh", ".py")."""
        return self.jobdb.script_path(job_id, extension)

    def ids(self, prefix: str = "", active: bool | None = None) -> list[str]:
        """Job ids starting with ``prefix``; with ``active``, only active (True) or ended (False) jobs."""
        found = self.jobdb.ids_like(prefix)
        if active is None:
            return found
        return [i for i in found if (r := self.jobdb.get(i)) is not None and r.is_active == active]

    def new_job_id(self, command: str | Sequence[str]) -> str:
        """A readable id not used yet, e.g. ``train-3``."""
        base = readable_base(command)
        return numbered(base, self.jobdb.ids_like(base + "-"))

    def require(self, job_id: str) -> JobRecord:
        """The up-to-date record of ``job_id``; ``JobNotFoundError`` if there is none."""
        record = self.get_status(job_id)
        if record is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.db_path}")
        return record

    def close(self) -> None:
        """Stop the reaper thread and close the database (running jobs are not touched)."""
        self.backends.close()
        self.jobdb.close()

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Jobs({self.db_path!r})"
