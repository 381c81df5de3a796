"""The backend-neutral life of a job: claim its id, submit it held, record the handle, release it; fold
observed ends into the database; stop it.

The lifecycle decides every status (through ``states``) and holds of each run only the backend's
opaque handle; what a handle means is the backend's business (``backends``).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from nodejobs.backends import host
from nodejobs.backends.base import (
    ENDED,
    HELD,
    PENDING,
    RUN_MARK,
    RUNNING,
    Backend,
    Handle,
    JobSpec,
    Observation,
    SubmitError,
    Usage,
)
from nodejobs.engine.preflight import check_arguments, startup_problem
from nodejobs.errors import BackendError, DatabaseError
from nodejobs.model import resources
from nodejobs.model.records import JobRecord, validate_job_id
from nodejobs.model.states import CANNOT_START_CODES, JobStatus, ended_status
from nodejobs.store.db import JobDB
from nodejobs.store.files import remove_if_exists

log = logging.getLogger(__name__)

S = JobStatus
LAUNCHER_LOST_REASON = "the process starting the job ended before the job started"
NOT_STARTED_REASON = "stopped before it started"
SURVIVED_REASON = "the job survived SIGTERM and SIGKILL"
QUEUED_STOP_REASON = "stopped while queued"
START_TIMEOUT = 300.0  # a start not completed in this time is given up (its launcher hung or failed)


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Launch:
    """What to start for a claimed record: the program, its environment and backend options."""

    argv: list[str]
    env: dict[str, str]
    keep_leftovers: bool = False
    options: dict[str, Any] | None = None


class Lifecycle:
    """Starts, observes and stops the jobs of one ``JobDB`` through their backends."""

    def __init__(
        self,
        job_db: JobDB,
        backend_for: Callable[[str], Backend],
        startup_window: float = 0.05,
        on_end: list[str] | None = None,
    ) -> None:
        self.job_db = job_db
        self.backend_for = backend_for  # backend name -> the instance observing that backend's jobs
        self.startup_window = startup_window
        self.on_end = on_end  # a command every job's backend runs after the job ended (the queue's)
        # run id -> why: starts this process gave up but could not record (e.g. a full disk); their
        # records say "starting" until a refresh can write the end, which needs no waiting for them
        self._abandoned: dict[str, str] = {}

    # -- starting ----------------------------------------------------------------------------------

    def run(
        self, command: str | Sequence[str], job_id: str, *, replace: bool = True, **options: Any
    ) -> JobRecord:
        """Start ``command`` (a list runs directly, a string through ``/bin/sh -c``) as ``job_id``;
        ``options`` are those of ``prepare``."""
        record, launch = self.prepare(command, job_id, **options)
        return self.start(record, launch, replace)

    def prepare(
        self,
        command: str | Sequence[str],
        job_id: str,
        *,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        logdir: str | None = None,
        logfile: str | None = None,
        backend: str = "local",
        keep_leftovers: bool = False,
        launch_options: dict[str, Any] | None = None,
        label: str | None = None,
        **fields: Any,
    ) -> tuple[JobRecord, Launch]:
        """The ``starting`` record and the launch of a new run of ``command`` as ``job_id`` (checked,
        nothing written); ``launch_options`` go to the backend with the record's resources; ``fields``
        are more record fields (group, tags, timeout, resources, ...). The record shows ``label`` as
        its command, if given (a function job: ``train(...)``)."""
        validate_job_id(job_id)
        shell = isinstance(command, str)
        argv = ["/bin/sh", "-c", command] if shell else [os.fspath(a) for a in command]  # type: ignore[union-attr]
        if not argv or not argv[-1 if shell else 0]:
            raise ValueError("empty command")
        cwd = os.path.abspath(os.path.expanduser(cwd)) if cwd else os.getcwd()
        envs = {str(k): str(v) for k, v in (envs or {}).items()}
        check_arguments(argv, envs, cwd)
        env = {"PYTHONUNBUFFERED": "1", **os.environ, **envs, "NODEJOBS_JOB_ID": job_id}
        env.pop(RUN_MARK, None)  # the run's own mark is given to its program by the backend
        record = self.new_record(
            job_id, backend, command=label or (command if shell else shlex.join(argv)), shell=shell, cwd=cwd,
            logdir=os.path.abspath(logdir) if logdir else self.job_db.logdir,
            logfile=validate_job_id(logfile) if logfile else job_id, env_keys=",".join(sorted(envs)) or None,
            **fields,
        )  # fmt: skip
        return record, Launch(argv, env, keep_leftovers, launch_options)

    def new_record(self, job_id: str, backend: str, **fields: Any) -> JobRecord:
        """A ``starting`` record of a new run of ``job_id``, made by this process."""
        started = now()
        return JobRecord(
            self_id=job_id, status=S.c_starting, backend=backend, run_id=uuid.uuid4().hex, dirname=job_id,
            started_at=started, submitted_at=started, **host.launcher_fields(), **fields,
        )  # fmt: skip

    def start(self, record: JobRecord, launch: Launch, replace: bool = True) -> JobRecord:
        """Claim ``record`` (a ``starting`` record) and start its run; return the record as it is then.

        Raises ``JobExistsError`` if a live job holds the id (with ``replace=False``: any job).
        """
        self.refresh(self.job_db.get(record.self_id))  # a stale "running" record must not block the id
        self.job_db.claim(record, replace)
        return self.start_claimed(record, launch)

    def start_claimed(self, record: JobRecord, launch: Launch, settle: bool = True) -> JobRecord:
        """Start the run of ``record``, already stored as ``starting`` by this process (e.g. the queue);
        ``settle``: wait up to the startup window for an immediate failure (the queue does not)."""
        return self.start_many([(record, launch)], settle)[0]

    def run_many(self, items: Sequence[tuple[str | Sequence[str], str, dict[str, Any]]]) -> list[JobRecord]:
        """``run`` of many ``(command, job_id, options)`` at once (``start_many``); all are checked
        before any is claimed. Raises ``JobExistsError`` if a live job holds one of the ids."""
        prepared = [self.prepare(command, job_id, **options) for command, job_id, options in items]
        claimed: list[tuple[JobRecord, Launch]] = []
        try:
            for record, launch in prepared:
                self.refresh(self.job_db.get(record.self_id))  # a stale "running" record must not block it
                self.job_db.claim(record, True)
                claimed.append((record, launch))
        except BaseException:
            for record, _ in claimed:
                self.fail_start(record, "not started: another job of its sweep could not be submitted")
            raise
        return self.start_many(claimed)

    def start_many(self, pairs: Sequence[tuple[JobRecord, Launch]], settle: bool = False) -> list[JobRecord]:
        """Start the runs of claimed ``starting`` records of one backend together (``submit_many``: e.g.
        one Slurm array); their records as they are then, in order. ``settle``: as ``start_claimed``."""
        out: dict[str, JobRecord] = {}
        try:
            ready: list[tuple[JobRecord, JobSpec]] = []
            for record, launch in pairs:
                spec = self._spec(record, launch)
                if isinstance(spec, JobSpec):
                    ready.append((record, spec))
                else:
                    out[record.self_id] = spec
            if ready:
                backend = self.backend_for(ready[0][0].backend or "local")
                try:
                    handles = backend.submit_many([spec for _, spec in ready])
                except BackendError as exc:  # refused as a whole (e.g. a cluster's controller unreachable)
                    for record, _ in ready:
                        out[record.self_id] = self.fail_start(record, str(exc))
                    raise
                for (record, _), handle in zip(ready, handles):
                    if isinstance(handle, SubmitError):
                        out[record.self_id] = self.fail_start(record, str(handle))
                    else:
                        out[record.self_id] = self._submitted(record, backend, handle, settle)
        except BaseException as exc:  # e.g. KeyboardInterrupt: never leave one "starting" if not launched
            for record, _ in pairs:
                if record.self_id not in out:
                    self._interrupted(record, exc)
            raise
        return [out[record.self_id] for record, _ in pairs]

    def _interrupted(self, record: JobRecord, exc: BaseException) -> None:
        """A start that raised: ``failed_start`` if its run was never recorded (so never let go); one
        recorded and let go is left to what its backend observes. Either way no wait for it."""
        reason = f"the start was interrupted ({exc!r})"
        self._abandoned[record.run_id] = reason
        try:
            current = self.job_db.get(record.self_id)
            if current is None or current.run_id != record.run_id or self.handle(current) is None:
                self._move(record, S.c_starting, S.c_failed_start, {"reason": reason, "ended_at": now()})
                self._abandoned.pop(record.run_id, None)
        except Exception:
            log.exception("job %s: cannot record the interrupted start", record.self_id)

    def _spec(self, record: JobRecord, launch: Launch) -> JobSpec | JobRecord:
        """What the backend is to run for ``record``, or its ``failed_start`` record if it cannot start."""
        try:
            os.makedirs(record.logdir, mode=0o700, exist_ok=True)
        except OSError as exc:
            return self.fail_start(record, f"cannot create log directory {record.logdir}: {exc.strerror}")
        problem = startup_problem(launch.argv, bool(record.shell), record.cwd, launch.env)
        if problem:
            return self.fail_start(record, problem)
        out_path, err_path = self.job_db.log_paths(record)
        return JobSpec(
            job_id=record.self_id, run_id=record.run_id, argv=launch.argv, env=launch.env, cwd=record.cwd,
            out_path=out_path, err_path=err_path, exit_path=self.job_db.exit_path(record),
            keep_leftovers=launch.keep_leftovers,
            options={**resources.loads(record.resources), **(launch.options or {})},
            timeout=record.timeout, on_end=self.on_end,
        )  # fmt: skip

    def _submitted(self, record: JobRecord, backend: Backend, handle: Handle, settle: bool) -> JobRecord:
        """Record the handle of a submitted (held) run, then let it go; the record as it is then."""
        fields = {"handle": json.dumps(handle), **backend.record_fields(handle)}
        queues = backend.capabilities.queues  # then it waits in the backend's queue once let go: pending
        recorded = False
        try:
            new = S.c_pending if queues else None
            recorded = self.job_db.update_run(record.self_id, record.run_id, S.c_starting, fields, new)
        finally:
            backend.release(handle, start=recorded)
        backend.watch(handle, lambda: self._on_end(record.self_id, record.run_id))
        if not recorded:  # a stop came first (or the start was given up as lost): it never ran
            self._move(record, S.c_stopping, S.c_stopped, {"reason": NOT_STARTED_REASON, "ended_at": now()})
            return self.job_db.get(record.self_id)  # type: ignore[return-value]
        if queues:  # it cannot have run yet: nothing to look at
            return self.job_db.get(record.self_id)  # type: ignore[return-value]
        self._move(record, S.c_starting, S.c_running)  # released: it runs (unless it ended already)
        if not settle:
            return self.job_db.get(record.self_id)  # type: ignore[return-value]
        try:
            backend.settle(handle, self.startup_window)
            return self.refresh(self.job_db.get(record.self_id))  # type: ignore[return-value]
        except (OSError, BackendError) as exc:  # it runs and is recorded: report it as recorded
            log.warning("job %s started; cannot look at it now: %s", record.self_id, exc)
            return self.job_db.get(record.self_id)  # type: ignore[return-value]

    def fail_start(self, record: JobRecord, reason: str) -> JobRecord:
        """Record that the job could not start; its logs are replaced by the reason (best effort)."""
        out_path, err_path = self.job_db.log_paths(record)
        try:
            remove_if_exists(out_path)
            remove_if_exists(self.job_db.exit_path(record))
            with open(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(f"nodejobs: {reason}\n")
        except OSError as exc:
            log.warning("job %s: cannot write its error log %s: %s", record.self_id, err_path, exc)
        fields = {"reason": reason, "ended_at": now()}
        if not self._move(record, S.c_starting, S.c_failed_start, fields):
            self._move(record, S.c_stopping, S.c_stopped, {"reason": NOT_STARTED_REASON, "ended_at": now()})
        return self.job_db.get(record.self_id)  # type: ignore[return-value]

    def _move(self, record: JobRecord, old: str, new: str, fields: dict | None = None) -> bool:
        return self.job_db.update_run(record.self_id, record.run_id, old, fields or {}, new)

    # -- observing ---------------------------------------------------------------------------------

    def handle(self, record: JobRecord) -> Handle | None:
        """The backend handle of a record's run (made from older records' fields where needed)."""
        if record.handle:
            return json.loads(record.handle)
        out_path, err_path = self.job_db.log_paths(record)
        legacy = {**record, "_exit_path": self.job_db.exit_path(record), "_out_path": out_path,
                  "_err_path": err_path}  # fmt: skip
        return self.backend_for(record.backend or "local").handle_from_record(legacy)

    def refresh(self, record: JobRecord | None) -> JobRecord | None:
        """Bring an active record up to date with its backend; ended records are returned as is."""
        if record is None or not record.is_active:
            return record
        return self.refresh_many([record])[0]

    def refresh_many(self, records: Iterable[JobRecord]) -> list[JobRecord]:
        """``refresh`` of many records, observing each backend's jobs in one call."""
        records = list(records)
        out: list[JobRecord] = list(records)
        by_backend: dict[str, list[tuple[int, Handle]]] = {}
        for i, record in enumerate(records):
            if not record.is_active:
                continue
            handle = self.handle(record)
            if handle is None:
                out[i] = self._refresh_unlaunched(record)
            else:
                by_backend.setdefault(record.backend or "local", []).append((i, handle))
        for name, items in by_backend.items():
            backend = self.backend_for(name)
            try:
                seen = backend.observe([h for _, h in items])
            except OSError as exc:  # not an answer: never take it for "the job is gone"
                raise BackendError(f"cannot observe {name} jobs now: {exc.strerror or exc}") from exc
            for (i, handle), observation in zip(items, seen):
                out[i] = self._fold(records[i], handle, observation, backend)
        return out

    def refresh_active(self) -> list[JobRecord]:
        """Fold the end of every job recorded as active whose run has ended; the records after it."""
        return self.refresh_many(self.job_db.list_active())

    def _fold(self, record: JobRecord, handle: Handle, seen: Observation, backend: Backend) -> JobRecord:
        if not seen.ended:
            return self._fold_active(record, seen)
        status = record.status
        if seen.state == ENDED and not seen.started:
            stopped = status == S.c_stopping
            new = S.c_stopped if stopped else S.c_failed_start
            fields = {"reason": NOT_STARTED_REASON if stopped else seen.reason or LAUNCHER_LOST_REASON}
            if seen.dependency_failed and not stopped:
                new, fields = S.c_dependency_failed, {"reason": self._broken_dependency(record, seen)}
        elif seen.state == ENDED:
            new = ended_status(status, seen.exit_code, seen.timed_out)
            fields = {"exit_code": seen.exit_code}
            if seen.cpu_time is not None:
                fields["cpu_time"] = seen.cpu_time
            if seen.started_at is not None and status == S.c_pending:
                fields["started_at"] = seen.started_at
            if seen.reason or status == S.c_pending:  # a pending job's reason was why it waited
                fields["reason"] = seen.reason
            if seen.timed_out and record.timeout is not None and not seen.reason:
                fields["reason"] = f"timed out: ended by its time limit of {record.timeout:g} s"
            if new == S.c_failed_start and seen.exit_code in CANNOT_START_CODES:
                what = "command not found" if seen.exit_code == 127 else "cannot execute"
                hint = f"see `nodejobs logs {record.self_id} --err`"
                fields["reason"] = f"{what} (exit code {seen.exit_code}); {hint}"
        else:
            new = ended_status(status, None)
            fields = {"reason": seen.reason}
        ended_at = seen.ended_at or now()
        if record.started_at is not None:  # file times are coarse: never end before the start
            ended_at = max(ended_at, record.started_at)
        fields["ended_at"] = ended_at
        try:
            folded = self._move(record, status, new, fields)
        except DatabaseError as exc:
            return self._unrecorded(record, new, fields, exc)
        if folded:
            backend_forget = getattr(backend, "forget", None)
            if backend_forget is not None:
                backend_forget(handle)
            return self.job_db.get(record.self_id)  # type: ignore[return-value]
        current = self.job_db.get(record.self_id)
        if current is not None and current.is_active and current.run_id == record.run_id and (
            current.status != status
        ):
            return self.refresh(current)  # type: ignore[return-value]  # it moved on meanwhile: fold again
        return current  # type: ignore[return-value]

    def _fold_active(self, record: JobRecord, seen: Observation) -> JobRecord:
        """Record what an active job's observation adds: it left the backend's queue, why it pends, or
        that a launcher which then died did release it."""
        status, moved = record.status, False
        if status == S.c_starting and seen.state != HELD and not self._launcher_alive(record):
            new = S.c_pending if seen.state == PENDING else S.c_running  # released by a launcher that died
            moved = self._move(record, S.c_starting, new)
            self._abandoned.pop(record.run_id, None)
        elif status == S.c_pending and seen.state == RUNNING:
            fields = {"started_at": seen.started_at or now(), "reason": None}
            moved = self._move(record, status, S.c_running, fields)
        elif status == S.c_pending and seen.state == PENDING and seen.reason and seen.reason != record.reason:
            moved = self._move(record, status, status, {"reason": seen.reason})
        return (self.job_db.get(record.self_id) or record) if moved else record

    def _broken_dependency(self, record: JobRecord, seen: Observation) -> str:
        """Why a job its backend will never run after its dependencies is ``dependency_failed``."""
        for dep in record.after_ids:
            found = self.refresh(self.job_db.get(dep))
            if found is None or (not found.is_active and found.status != S.c_finished):
                return f"dependency {dep!r} " + (f"ended {found.status}" if found else "was removed")
        return f"a dependency did not finish ({record.backend}: {seen.reason})"

    def usage(self, records: Iterable[JobRecord]) -> dict[str, Usage]:
        """CPU and memory now of the running ones of ``records`` (one backend call per backend), by id.

        Each sample raises the record's ``max_rss`` where it is higher: the recorded peak is the
        largest seen by any sample while the job ran.
        """
        by_backend: dict[str, list[tuple[JobRecord, Handle]]] = {}
        for record in records:
            handle = self.handle(record) if record.is_active else None
            if handle is not None:
                by_backend.setdefault(record.backend or "local", []).append((record, handle))
        out: dict[str, Usage] = {}
        for name, items in by_backend.items():
            backend = self.backend_for(name)
            if not backend.capabilities.resource_usage:
                continue
            for (record, _), used in zip(items, backend.usage([h for _, h in items])):
                if used is not None:
                    out[record.self_id] = used
        peaks = [(r.self_id, r.run_id, out[r.self_id].rss) for items in by_backend.values() for r, _ in items
                 if r.self_id in out and (r.max_rss or 0) < out[r.self_id].rss]  # fmt: skip
        try:
            self.job_db.record_peaks(peaks)
        except DatabaseError as exc:  # e.g. disk full: the sample is still worth showing
            log.warning("cannot record the jobs' peak memory: %s", exc)
        return out

    def _launcher_alive(self, record: JobRecord) -> bool:
        """Whether the process that started ``record`` may still complete its start."""
        if record.run_id in self._abandoned or not host.same_boot(record) or not host.launcher_alive(record):
            return False
        age = (now() - record.started_at).total_seconds() if record.started_at else float("inf")
        return age < START_TIMEOUT

    def _refresh_unlaunched(self, record: JobRecord) -> JobRecord:
        """A record whose run has no handle yet: if its launcher is gone, it never will have one."""
        if record.status not in (S.c_starting, S.c_stopping) or self._launcher_alive(record):
            return record
        if record.run_id in self._abandoned:
            reason = self._abandoned[record.run_id]
        elif not host.same_boot(record):
            reason = "the machine restarted while the job was active"
        elif host.launcher_alive(record):
            reason = f"the start did not complete within {START_TIMEOUT:.0f} s"
        else:
            reason = LAUNCHER_LOST_REASON
        new = S.c_stopped if record.status == S.c_stopping else S.c_failed_start
        fields = {"reason": reason, "ended_at": now()}
        try:
            self._move(record, record.status, new, fields)
        except DatabaseError as exc:
            return self._unrecorded(record, new, fields, exc)
        self._abandoned.pop(record.run_id, None)
        return self.job_db.get(record.self_id)  # type: ignore[return-value]

    @staticmethod
    def _unrecorded(record: JobRecord, new: str, fields: dict, exc: DatabaseError) -> JobRecord:
        """An end that cannot be written now (e.g. disk full): reported as it is; the next refresh that
        can write records it."""
        log.warning("job %s ended (%s) but its record cannot be updated: %s", record.self_id, new, exc)
        return JobRecord.trusted({**record, **fields, "status": new})

    def _on_end(self, job_id: str, run_id: str | None) -> None:
        record = self.job_db.get(job_id)
        if record is not None and record.run_id == run_id:
            self.refresh(record)

    def wait(self, record: JobRecord, timeout: float | None) -> bool:
        """Block until the record's run ends or ``timeout`` s pass; True if it ended."""
        handle = self.handle(record)
        if handle is None:  # its start is under way in another thread or process: look again soon
            threading.Event().wait(min(timeout if timeout is not None else 0.05, 0.05))
            return False
        return self.backend_for(record.backend or "local").wait(handle, timeout)

    # -- stopping ----------------------------------------------------------------------------------

    def stop(self, job_id: str, grace: float) -> JobRecord | None:
        """End a job and everything it started (SIGTERM-like first, forcibly after ``grace`` s, as its
        backend escalates); return its final record. An ended job's leftovers are ended too."""
        record = self.refresh(self.job_db.get(job_id))
        if record is None:
            return None
        if not record.is_active:
            handle = self.handle(record)
            if handle is not None:
                self.backend_for(record.backend or "local").cancel([handle], grace)
            return record
        if record.status == S.c_queued:  # QUEUED -> STOPPED: it never runs
            if self._move(record, S.c_queued, S.c_stopped, {"reason": QUEUED_STOP_REASON, "ended_at": now()}):
                remove_if_exists(self.job_db.pending_path(record))
                return self.job_db.get(job_id)
            return self.stop(job_id, grace)  # the queue started it meanwhile
        if record.status == S.c_stopping:
            return self._finish_stop(record, grace)
        if not self._move(record, record.status, S.c_stopping):
            return self.stop(job_id, grace)  # it moved on meanwhile
        record = self.job_db.get(job_id)  # type: ignore[assignment]
        return self._finish_stop(record, grace)

    def _finish_stop(self, record: JobRecord, grace: float) -> JobRecord:
        handle = self.handle(record)
        if handle is None:  # its start is under way in another thread or process: it will not run
            return self._await_final(record.self_id)
        backend = self.backend_for(record.backend or "local")
        try:
            ended = backend.cancel([handle], grace)[0]
        except OSError as exc:
            raise BackendError(f"cannot stop job {record.self_id!r} now: {exc.strerror or exc}") from exc
        if ended:
            backend.wait(handle, max(grace, 1.0))
        record = self.refresh(self.job_db.get(record.self_id))  # type: ignore[assignment]
        if not ended and record is not None and record.status == S.c_stopping:
            self._move(record, S.c_stopping, S.c_failed_stop, {"reason": SURVIVED_REASON})
            record = self.job_db.get(record.self_id)  # type: ignore[assignment]
        return record

    def _await_final(self, job_id: str) -> JobRecord:
        """Wait (up to the start timeout) until a run whose start is under way elsewhere has ended."""
        deadline = time.monotonic() + START_TIMEOUT
        pause = 0.001
        done = threading.Event()
        while True:
            record = self.refresh(self.job_db.get(job_id))
            if record is None or record.status != S.c_stopping or self.handle(record) is not None:
                if record is not None and record.status == S.c_stopping:
                    return self._finish_stop(record, 0.0)
                return record  # type: ignore[return-value]
            if time.monotonic() > deadline:
                return record
            done.wait(pause)  # the starter records its outcome within milliseconds
            pause = min(pause * 2, 0.05)
