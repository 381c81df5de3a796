"""The daemonless queue: queued jobs wait for a slot in their group, for their dependencies, for their
start time; ``dispatch`` starts those that may start.

There is no daemon. ``dispatch`` is a short, idempotent step, run by whoever is around: the process
that submits a job, every API call while jobs are queued, the supervisor of every job that ends (its
``on_end`` runs ``python -m nodejobs.queue DB``) and, for a delayed job, a detached ``sleep`` that
ends at its start time. Choosing and claiming jobs happens in one ``BEGIN IMMEDIATE`` transaction, so
two dispatchers never start the same job nor exceed a group's limit; each claimed job is then started
through the lifecycle with the environment and directory it was submitted with (its pending file).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

from nodejobs.backends import host
from nodejobs.engine.lifecycle import Launch, Lifecycle, now
from nodejobs.errors import InvalidInputError
from nodejobs.model.records import JobRecord, JobStatus
from nodejobs.model.states import ACTIVE_STATUSES
from nodejobs.queue import timers
from nodejobs.store.db import JobDB, QueuedJob
from nodejobs.store.files import remove_if_exists, write_private

log = logging.getLogger(__name__)

S = JobStatus
MARKER = "queued"  # <db_path>/queued exists while the database may hold queued jobs
DRAINING = "draining"  # <db_path>/draining holds the pid of a dispatcher that keeps draining
_MAY_STILL_FINISH = (S.c_finished, *ACTIVE_STATUSES)  # a dependency in any other status is broken


class Queue:
    """Queued jobs of one ``JobDB``, started through ``lifecycle``."""

    def __init__(self, job_db: JobDB, lifecycle: Lifecycle) -> None:
        self.job_db = job_db
        self.lifecycle = lifecycle
        self.marker = os.path.join(job_db.db_path, MARKER)
        self.draining = os.path.join(job_db.db_path, DRAINING)

    # -- submitting --------------------------------------------------------------------------------

    def submit(self, record: JobRecord, launch: Launch, replace: bool = True) -> JobRecord:
        """Store ``record`` as ``queued`` with its launch in its pending file, then dispatch.

        Its dependencies must exist and must not lead back to it (``ValueError``, nothing written).
        """
        queued = JobRecord.trusted({**record, "status": S.c_queued, "started_at": None, "reason": None})
        pending = self.job_db.pending_path(record)
        os.makedirs(os.path.dirname(pending), mode=0o700, exist_ok=True)
        self.lifecycle.refresh(self.job_db.get(record.self_id))  # a stale active record must not block it
        with self.job_db.transaction():
            self._check_dependencies(record.self_id, record.after_ids)
            self.job_db.claim(queued, replace)
            saved = {"argv": launch.argv, "env": launch.env, "keep": launch.keep_leftovers}
            write_private(pending, json.dumps(saved))
            with open(os.open(self.marker, os.O_WRONLY | os.O_CREAT, 0o600)):
                pass
        self.dispatch()
        current = self.lifecycle.refresh(self.job_db.get(record.self_id))
        if current is None:  # removed meanwhile: report the record as it was queued
            return queued
        return current

    def _check_dependencies(self, job_id: str, after: list[str]) -> None:
        """Refuse unknown dependencies and cycles (a job after itself, or after one that waits for it)."""
        seen: set[str] = set()
        todo = list(after)
        while todo:
            dep = todo.pop()
            if dep == job_id:
                raise InvalidInputError(f"job {job_id!r} cannot run after itself (a dependency cycle)")
            if dep in seen:
                continue
            seen.add(dep)
            found = self.job_db.status_and_after(dep)
            if found is None:
                raise InvalidInputError(f"job {job_id!r}: unknown dependency {dep!r} (no job with that id)")
            status, deps = found
            if status == S.c_queued:
                todo.extend(deps)

    def dispatch_command(self) -> list[str]:
        """The command that dispatches this database from any process: ``python -m nodejobs.queue``."""
        return [sys.executable, "-m", "nodejobs.queue", self.job_db.db_path]

    def on_end_command(self) -> list[str]:
        """What a job's supervisor runs when the job ends: a dispatch, only while jobs are queued and no
        draining dispatcher is alive (a shell test costs ~1 ms; a Python start ~50)."""
        test = (
            '[ -e "$1" ] || exit 0; p=; read -r p < "$2" 2>/dev/null; '
            '[ -n "$p" ] && kill -0 "$p" 2>/dev/null && exit 0; shift 2; exec "$@"'
        )
        files = [self.marker, self.draining]
        return ["/bin/sh", "-c", test, "nodejobs-on-end", *files, *self.dispatch_command()]

    # -- dispatching -------------------------------------------------------------------------------

    def has_queued(self) -> bool:
        """Whether jobs may be queued (one ``stat``: cheap enough for every API call)."""
        return os.path.exists(self.marker)

    def dispatch(self, fold_ends: bool = True) -> list[JobRecord]:
        """Start every queued job that may start now; end those whose dependency did not finish.
        Returns the records of the jobs started."""
        if not self.has_queued():
            return []
        if fold_ends:
            self.lifecycle.refresh_many(self.job_db.list_in(s for s in ACTIVE_STATUSES if s != S.c_queued))
        with self.job_db.transaction():
            claimed = self._claim()
        started = []
        for record in claimed:
            launch = self._launch(record)
            if launch is None:
                started.append(self.lifecycle.fail_start(record, "its queued environment file is missing"))
            else:
                started.append(self.lifecycle.start_claimed(record, launch, settle=False))
        return started

    def _claim(self) -> list[JobRecord]:
        """In the transaction: the queued jobs that may start, claimed as ``starting`` with their slot."""
        queued = self.job_db.queued()
        if not queued:
            remove_if_exists(self.marker)
            return []
        slots = _Slots(self.job_db.running_slots(), self.job_db.limits())
        statuses = self.job_db.statuses(d for job in queued for d in job.after)
        moment = now()
        future = [at for at in (job.start_at for job in queued) if at is not None and at > moment.timestamp()]
        if future:
            timers.ensure_timer(self.job_db.db_path, min(future), self.dispatch_command())
        launcher = host.this_process()
        claimed = []
        for job in queued:
            broken = next(
                (d for d in job.after if statuses.get(d) not in (S.c_finished, *ACTIVE_STATUSES)), None
            )
            if broken is not None:
                self._end_unrunnable(job, broken, statuses.get(broken), moment)
                statuses[job.job_id] = S.c_dependency_failed
                continue
            reason = _waits_for(job, statuses, slots, moment)
            if reason is not None:
                if reason != job.reason:
                    self.job_db.update_run(job.job_id, job.run_id, S.c_queued, {"reason": reason})
                continue
            fields = {
                "slot": slots.take(job.group), "started_at": now(), "reason": None, "boot_id": host.boot_id(),
                "launcher_pid": launcher[0], "launcher_start": launcher[1],
            }  # fmt: skip
            if self.job_db.update_run(job.job_id, job.run_id, S.c_queued, fields, S.c_starting):
                # QUEUED -> STARTING
                statuses[job.job_id] = S.c_starting
                record = self.job_db.get(job.job_id)
                if record is not None:
                    claimed.append(record)
        return claimed

    def _end_unrunnable(self, job: QueuedJob, broken: str, status: str | None, moment: datetime) -> None:
        """QUEUED -> DEPENDENCY_FAILED: ``job`` never runs, since its dependency ``broken`` did not finish."""
        how = f"ended {status}" if status else "was removed"
        fields = {"reason": f"dependency {broken!r} {how}", "ended_at": moment}
        self.job_db.update_run(job.job_id, job.run_id, S.c_queued, fields, S.c_dependency_failed)
        remove_pending(self.job_db, job.job_id)

    def next_start(self) -> float | None:
        """Seconds until the earliest delayed start of a queued job, or None."""
        earliest = self.job_db.earliest_start()
        return earliest - now().timestamp() if earliest is not None else None

    def _launch(self, record: JobRecord) -> Launch | None:
        """The launch a claimed job was submitted with (read, then its pending file deleted)."""
        path = self.job_db.pending_path(record)
        try:
            with open(path) as f:
                pending = json.load(f)
        except (OSError, ValueError) as exc:
            log.warning("job %s: cannot read its pending file %s: %s", record.self_id, path, exc)
            return None
        finally:
            remove_if_exists(path)
        env = dict(pending["env"])
        if record.slot is not None:
            env["NODEJOBS_SLOT"] = str(record.slot)
        return Launch(list(pending["argv"]), env, bool(pending.get("keep")))


class _Slots:
    """The places taken in each group: how many of its jobs run, and which slots they hold."""

    def __init__(self, running: list[tuple[str, int | None]], limits: dict[str, int]) -> None:
        self.limits = limits
        self.counts: dict[str, int] = {}
        self.used: dict[str, set[int | None]] = {}
        for group, slot in running:
            self.counts[group] = self.counts.get(group, 0) + 1
            self.used.setdefault(group, set()).add(slot)

    def full(self, group: str) -> str | None:
        """Why ``group`` has no free place, or None if it has one."""
        limit, running = self.limits.get(group), self.counts.get(group, 0)
        if limit is not None and running >= limit:
            return f"waiting for slot in group {group} ({running}/{limit} running)"
        return None

    def take(self, group: str) -> int | None:
        """Take a place in ``group``: the lowest free slot in a limited group, else None."""
        self.counts[group] = self.counts.get(group, 0) + 1
        limit = self.limits.get(group)
        if limit is None:
            return None
        slot = min(set(range(limit)) - self.used.get(group, set()))
        self.used.setdefault(group, set()).add(slot)
        return slot


def _waits_for(job: QueuedJob, statuses: dict[str, str], slots: _Slots, moment: datetime) -> str | None:
    """Why a queued job may not start yet (its dependencies, its start time, its group's limit), or None."""
    waiting = [d for d in job.after if statuses.get(d) != S.c_finished]
    if waiting:
        return f"waiting for {', '.join(waiting)}"
    if job.start_at is not None and job.start_at > moment.timestamp():
        when = datetime.fromtimestamp(job.start_at, timezone.utc).strftime("%H:%M:%S")
        return f"starts at {when} UTC"
    return slots.full(job.group)


def remove_pending(job_db: JobDB, job_id: str) -> None:
    """Delete the pending file (the environment) of a queued job that will not run."""
    record = job_db.get(job_id)
    if record is not None:
        remove_if_exists(job_db.pending_path(record))
