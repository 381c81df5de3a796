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
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

from nodejobs.backends import host
from nodejobs.backends.base import RUN_MARK
from nodejobs.engine.lifecycle import Launch, Lifecycle, now
from nodejobs.model.records import JobRecord, JobStatus
from nodejobs.store.db import JobDB, q
from nodejobs.store.files import remove_if_exists

log = logging.getLogger(__name__)

S = JobStatus
_RUNNING_SQL = ", ".join(f"'{s}'" for s in (S.c_starting, S.c_pending, S.c_running, S.c_stopping))
MARKER = "queued"  # <db_path>/queued exists while the database may hold queued jobs
DRAINING = "draining"  # <db_path>/draining holds the pid of a dispatcher that keeps draining
PREWARM = 1.0  # a timer wakes this early; the dispatcher it becomes waits out the rest (Python starts slowly)
TIMER = "timer"  # <db_path>/timer names the sleep that dispatches at the next delayed start


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
            _write_private(pending, {"argv": launch.argv, "env": launch.env, "keep": launch.keep_leftovers})
            with open(os.open(self.marker, os.O_WRONLY | os.O_CREAT, 0o600)):
                pass
        self.dispatch()
        return self.lifecycle.refresh(self.job_db.get(record.self_id))  # type: ignore[return-value]

    def _check_dependencies(self, job_id: str, after: list[str]) -> None:
        """Refuse unknown dependencies and cycles (a job after itself, or after one that waits for it)."""
        seen: set[str] = set()
        todo = list(after)
        while todo:
            dep = todo.pop()
            if dep == job_id:
                raise ValueError(f"job {job_id!r} cannot run after itself (a dependency cycle)")
            if dep in seen:
                continue
            seen.add(dep)
            rows = self.job_db.rows(f"SELECT status, {q('after')} FROM jobs WHERE self_id = ?", [dep])
            if not rows:
                raise ValueError(f"job {job_id!r}: unknown dependency {dep!r} (no job with that id)")
            status, deps = rows[0]
            if status == S.c_queued:
                todo.extend(_ids(deps))

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
            self.lifecycle.refresh_many(self.job_db.list_in(_ACTIVE[1:]))
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
        columns = ("self_id", "run_id", "group", "after", "start_at", "reason")
        queued = self.job_db.rows(
            f"SELECT {', '.join(map(q, columns))} FROM jobs WHERE status = ? ORDER BY submitted_at, rowid",
            [S.c_queued],
        )
        if not queued:
            remove_if_exists(self.marker)
            return []
        used: dict[str, set[int | None]] = {}
        counts: dict[str, int] = {}
        sql = f"SELECT coalesce({q('group')}, 'default'), slot FROM jobs WHERE status IN ({_RUNNING_SQL})"
        for group, slot in self.job_db.rows(sql):
            counts[group] = counts.get(group, 0) + 1
            used.setdefault(group, set()).add(slot)
        limits = self.job_db.limits()
        statuses = self._statuses({d for row in queued for d in _ids(row[3])})
        moment = now()
        launcher_pid, launcher_start = host.this_process()
        claimed = []
        future = [row[4] for row in queued if row[4] is not None and row[4] > moment.timestamp()]
        if future:
            self._ensure_timer(min(future))
        for job_id, run_id, group, after, start_at, old_reason in queued:
            deps = _ids(after)
            broken = next((d for d in deps if statuses.get(d) not in (S.c_finished, *_ACTIVE)), None)
            if broken is not None:  # QUEUED -> DEPENDENCY_FAILED: it never runs
                status = statuses.get(broken)
                how = f"ended {status}" if status else "was removed"
                fields = {"reason": f"dependency {broken!r} {how}", "ended_at": moment}
                self.job_db.update_run(job_id, run_id, S.c_queued, fields, S.c_dependency_failed)
                remove_pending(self.job_db, job_id)
                statuses[job_id] = S.c_dependency_failed
                continue
            waiting = [d for d in deps if statuses.get(d) != S.c_finished]
            group = group or "default"
            limit = limits.get(group)
            running = counts.get(group, 0)
            reason = None
            if waiting:
                reason = f"waiting for {', '.join(waiting)}"
            elif start_at is not None and start_at > moment.timestamp():
                when = datetime.fromtimestamp(start_at, timezone.utc).strftime("%H:%M:%S")
                reason = f"starts at {when} UTC"
            elif limit is not None and running >= limit:
                reason = f"waiting for slot in group {group} ({running}/{limit} running)"
            if reason is not None:
                if reason != old_reason:
                    self.job_db.update_run(job_id, run_id, S.c_queued, {"reason": reason})
                continue
            slot = None
            if limit is not None:
                slot = min(set(range(limit)) - used.get(group, set()))
                used.setdefault(group, set()).add(slot)
            counts[group] = running + 1
            fields: dict[str, Any] = {
                "slot": slot, "started_at": now(), "reason": None, "boot_id": host.boot_id(),
                "launcher_pid": launcher_pid, "launcher_start": launcher_start,
            }  # fmt: skip
            if self.job_db.update_run(job_id, run_id, S.c_queued, fields, S.c_starting):  # QUEUED -> STARTING
                statuses[job_id] = S.c_starting
                claimed.append(self.job_db.get(job_id))
        return claimed

    def _ensure_timer(self, when: float) -> None:
        """Make sure a detached ``sleep`` dispatches at ``when`` (a timestamp): one timer per database,
        recorded in ``<db>/timer`` as ``pid start-ticks boot when``; a new one if it is gone or late."""
        path = os.path.join(self.job_db.db_path, TIMER)
        try:
            with open(path) as f:
                pid, start, boot, at = f.read().split()
            if float(at) <= when + 0.001 and host.is_alive(int(pid), int(start), boot):
                return
        except (OSError, ValueError):
            pass
        pid = start_later(when - now().timestamp() - PREWARM, self.dispatch_command())
        found = host.proc_start(pid)
        _write_text(path, f"{pid} {found[0] if found else 0} {host.boot_id()} {when}\n")

    def next_start(self) -> float | None:
        """Seconds until the earliest delayed start of a queued job, or None."""
        rows = self.job_db.rows("SELECT min(start_at) FROM jobs WHERE status = ? AND start_at IS NOT NULL",
                                [S.c_queued])  # fmt: skip
        return rows[0][0] - now().timestamp() if rows and rows[0][0] is not None else None

    def _statuses(self, ids: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ids_list = sorted(ids)
        for i in range(0, len(ids_list), 500):
            chunk = ids_list[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT self_id, status FROM jobs WHERE self_id IN ({marks})"
            found.update(self.job_db.rows(sql, chunk))
        return found

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


_ACTIVE = (S.c_queued, S.c_starting, S.c_pending, S.c_running, S.c_stopping)


def _ids(after: str | None) -> list[str]:
    """The dependency ids stored in a record's ``after`` (none if it is not a JSON list of ids)."""
    return JobRecord.trusted({"self_id": "x", "after": after}).after_ids


def remove_pending(job_db: JobDB, job_id: str) -> None:
    """Delete the pending file (the environment) of a queued job that will not run."""
    record = job_db.get(job_id)
    if record is not None:
        remove_if_exists(job_db.pending_path(record))


def _write_private(path: str, data: dict) -> None:
    """Write ``data`` as JSON to ``path``, readable by its owner only, replacing it whole."""
    _write_text(path, json.dumps(data))


def _write_text(path: str, text: str) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)
        os.replace(temporary, path)
    finally:
        remove_if_exists(temporary)


def start_later(delay: float, argv: list[str]) -> int:
    """Run ``argv`` after ``delay`` seconds from a detached ``sleep`` (no Python process waits meanwhile);
    the pid of the shell that sleeps, then becomes ``argv``."""
    env = {k: v for k, v in os.environ.items() if k != RUN_MARK}
    popen = subprocess.Popen(
        ["/bin/sh", "-c", 'sleep "$0"; exec "$@"', f"{max(delay, 0):.3f}", *argv], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    popen.returncode = 0  # not ours to wait for: no ResourceWarning when it outlives this object
    return popen.pid
