"""``JobDB``: job records in SQLite (``<db_path>/jobs.db``) and their output files in ``<db_path>/logs``.

Several processes may use one database at once: the database runs in WAL mode with a busy timeout,
and every write is one statement, or one ``transaction()`` (the queue's dispatch). Every status change
is a compare-and-set on the run (``run_id``) and the status it leaves, checked against the transition
table of ``states``. The table's SQL is in ``table``, the paths of a job's files in ``paths``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

from nodejobs.errors import DatabaseError, InvalidInputError, JobExistsError
from nodejobs.model.listings import JobRecordDict
from nodejobs.model.options import DEFAULT_GROUP
from nodejobs.model.records import (
    JobFilter,
    JobRecord,
    JobStatus,
    parse_ids,
    validate_job_id,
)
from nodejobs.model.states import check_transition
from nodejobs.store import files as logs
from nodejobs.store import table
from nodejobs.store.cache import RecordCache, gc_paused
from nodejobs.store.paths import JobPaths
from nodejobs.store.query import JobQuery
from nodejobs.store.table import (
    ACTIVE_SQL,
    COLUMNS,
    FIELDS,
    ORDER,
    SELECT,
    STARTED,
    check_columns,
    marks,
    q,
    to_sql,
)
from nodejobs.store.table import row_to_record as _row_to_record  # a module global: tests count its calls

__all__ = ["COLUMNS", "Changes", "JobDB", "JobFilter", "JobRecord", "JobRecordDict", "QueuedJob", "q"]


class QueuedJob(NamedTuple):
    """What the queue reads of a queued job to decide whether it may start."""

    job_id: str
    run_id: str | None
    group: str
    after: list[str]  # the ids it waits for
    start_at: float | None  # a timestamp: not started before it
    reason: str | None  # why it waits, as last written


class Changes(NamedTuple):
    """What changed in a database after a change number (``JobDB.changes``)."""

    number: int  # the latest change: pass it next time
    total: int  # how many records there are now
    changed: list[JobRecord]  # written (inserted or updated), in the order of their changes
    deleted: list[str]  # ids deleted (and not written again since)


class JobDB:
    """SQLite storage of ``JobRecord`` rows plus the paths and reading of each job's output files."""

    def __init__(self, db_path: str, logdir: str | None = None) -> None:
        self.db_path = os.path.abspath(os.path.expanduser(db_path))
        self.logdir = os.path.abspath(logdir) if logdir else os.path.join(self.db_path, "logs")
        self.db_file = os.path.join(self.db_path, "jobs.db")
        self._lock = threading.RLock()  # a transaction holds it while its statements run
        self._cache = RecordCache()
        try:
            os.makedirs(self.db_path, mode=0o700, exist_ok=True)  # private when nodejobs creates it
            os.makedirs(self.logdir, mode=0o700, exist_ok=True)
            if not os.path.exists(self.db_file):  # never open() an existing one: its close() would drop
                # the POSIX locks SQLite holds on it for this process's other connections
                os.close(os.open(self.db_file, os.O_RDONLY | os.O_CREAT, 0o600))  # never readable by others
            if os.stat(self.db_file).st_mode & 0o077:
                os.chmod(self.db_file, 0o600)
            self._conn = table.connect(self.db_file)
        except (OSError, sqlite3.Error) as exc:
            hint = "" if os.access(self.db_path, os.W_OK) else " (the directory is not writable)"
            raise DatabaseError(f"cannot open job database {self.db_file}: {exc}{hint}") from exc

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            with self._lock:
                return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseError(f"job database {self.db_file}: {exc}") from exc
        except (OverflowError, UnicodeEncodeError) as exc:  # a value SQLite cannot hold: nothing was written
            raise InvalidInputError(f"job database {self.db_file}: cannot store a value: {exc}") from exc

    def _query(self, where: str = "", params: Iterable[Any] = (), order: str = ORDER) -> list[JobRecord]:
        return [_row_to_record(row) for row in self._execute(f"{SELECT} {where} {order}", params)]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (``BEGIN IMMEDIATE``: other writers wait) holding this object's lock;
        committed at the end, rolled back on an exception."""
        with self._lock:
            self._execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._execute("ROLLBACK")
                raise
            self._execute("COMMIT")

    # -- the queue's lean reads (inside its transaction) ----------------------------------------------

    def queued(self) -> list[QueuedJob]:
        """The queued jobs, in the order they were submitted."""
        rows = self._execute(
            f"SELECT self_id, run_id, {q('group')}, {q('after')}, start_at, reason FROM jobs "
            "WHERE status = ? ORDER BY submitted_at, rowid",
            [JobStatus.c_queued],
        )
        return [QueuedJob(i, run, group or DEFAULT_GROUP, parse_ids(after), at, why)
                for i, run, group, after, at, why in rows]  # fmt: skip

    def running_slots(self) -> list[tuple[str, int | None]]:
        """``(group, slot)`` of every job that holds a place in its group (started, not yet ended)."""
        sql = f"SELECT coalesce({q('group')}, ?), slot FROM jobs WHERE status IN ({marks(STARTED)})"
        return [(group, slot) for group, slot in self._execute(sql, [DEFAULT_GROUP, *STARTED])]

    def statuses(self, ids: Iterable[str]) -> dict[str, str]:
        """Job id -> status, for those of ``ids`` that exist."""
        found: dict[str, str] = {}
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = f"SELECT self_id, status FROM jobs WHERE self_id IN ({marks(part)})"
            found.update(self._execute(sql, part))
        return found

    def status_and_after(self, job_id: str) -> tuple[str, list[str]] | None:
        """A job's status and the ids it waits for, or None if there is no such job."""
        rows = self._execute(f"SELECT status, {q('after')} FROM jobs WHERE self_id = ?", [job_id])
        return (rows[0][0], parse_ids(rows[0][1])) if rows else None

    def earliest_start(self) -> float | None:
        """The earliest delayed start of a queued job (a timestamp), or None."""
        sql = "SELECT min(start_at) FROM jobs WHERE status = ? AND start_at IS NOT NULL"
        return self._execute(sql, [JobStatus.c_queued])[0][0]

    # -- group limits ----------------------------------------------------------------------------

    def set_limit(self, group: str, n: int | None) -> None:
        """Store the most jobs of ``group`` that may run at once (None: unlimited)."""
        if n is None:
            self._execute("DELETE FROM limits WHERE name = ?", [group])
        else:
            self._execute("INSERT INTO limits (name, n) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET n = ?",
                          [group, n, n])  # fmt: skip

    def limits(self) -> dict[str, int]:
        """Group name -> limit, for every limited group."""
        return {name: n for name, n in self._execute("SELECT name, n FROM limits")}

    # -- paths -----------------------------------------------------------------------------------

    def paths(self, record: JobRecord) -> JobPaths:
        """Where the files of ``record``'s job are."""
        return JobPaths.of(record, self.logdir)

    def log_paths(self, record: JobRecord) -> tuple[str, str]:
        """``(stdout_path, stderr_path)`` of a job."""
        paths = self.paths(record)
        return paths.out, paths.err

    def exit_path(self, record: JobRecord) -> str:
        """Where a job's supervisor writes its exit code."""
        return self.paths(record).exit

    def pending_path(self, record: JobRecord) -> str:
        """Where a queued job's environment waits until it starts (0600, deleted then)."""
        return self.paths(record).pending

    def script_path(self, job_id: str, extension: str) -> str:
        """Where a job's script (from ``%%job``) is kept."""
        return JobPaths(self.logdir, job_id).script(extension)

    # -- records ---------------------------------------------------------------------------------

    def update_status(self, record: JobRecord | dict) -> None:
        """Insert or update a job; a partial record changes only the fields it holds.

        A change of status of a stored job must be one the transition table allows.
        """
        if not isinstance(record, JobRecord):
            record = JobRecord(record)
        check_columns(record)
        if record.status is not None:
            current = self._execute("SELECT status FROM jobs WHERE self_id = ?", [record.self_id])
            if current and current[0][0] not in (None, record.status):
                check_transition(current[0][0], record.status)
        self._upsert({"last_update": datetime.now(timezone.utc), **record})

    def claim(self, record: JobRecord, replace: bool = True) -> None:
        """Write ``record`` as the job's new run, replacing an ended run of the same id.

        Raises ``JobExistsError`` if a run of that id is still active, or with ``replace=False`` if
        the id exists at all (checked atomically, so two processes cannot take the same id at once).
        """
        fields = {name: record.get(name) for name in COLUMNS}
        fields["last_update"] = datetime.now(timezone.utc)
        only_if = f"jobs.status NOT IN ({ACTIVE_SQL})" if replace else "0"
        if self._upsert(fields, only_if):
            return
        current = self.get(record.self_id)
        if current is not None and not current.is_active:
            raise JobExistsError(f"job {record.self_id!r} already exists ({current.status})")
        pid = current.last_pid if current else None
        raise JobExistsError(
            f"job {record.self_id!r} is still {current.status if current else 'active'} (pid {pid}); "
            "stop it or choose another id"
        )

    def _upsert(self, fields: dict[str, Any], only_if: str = "1") -> bool:
        """Insert ``fields`` as a row, or update the existing row where ``only_if`` holds; True if written."""
        names = list(fields)
        updates = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in names if n != "self_id")
        rows = self._execute(
            f"INSERT INTO jobs ({', '.join(map(q, names))}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT(self_id) DO UPDATE SET {updates} WHERE {only_if} RETURNING self_id",
            (to_sql(n, fields[n]) for n in names),
        )
        return bool(rows)

    def update_run(
        self, job_id: str, run_id: str | None, old: str, fields: dict[str, Any], new: str | None = None
    ) -> bool:
        """Write ``fields`` (and the status ``new``) to run ``run_id`` of ``job_id`` if it is still ``old``.

        A compare-and-set: it returns False, changing nothing, if the job moved on meanwhile (another
        process or thread changed it first), so concurrent folders of one end do the work once.
        ``old -> new`` must be allowed by the transition table (else ``IllegalTransition``).
        """
        if new is not None and new != old:
            fields = {**fields, "status": new}
        fields = {**fields, "last_update": datetime.now(timezone.utc)}
        JobRecord(self_id=job_id, **fields)  # validate
        if new is not None and new != old:
            check_transition(old, new)
        check_columns(fields)
        assignments = ", ".join(f"{q(n)} = ?" for n in fields)
        rows = self._execute(
            f"UPDATE jobs SET {assignments} "
            "WHERE self_id = ? AND run_id IS ? AND status = ? RETURNING self_id",
            [*(to_sql(n, v) for n, v in fields.items()), job_id, run_id, old],
        )
        return bool(rows)

    def get(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, or None."""
        found = self._query("WHERE self_id = ?", [validate_job_id(job_id)])
        return found[0] if found else None

    def list_status(self, query: JobQuery | JobFilter | dict | None = None) -> JobRecordDict:
        """Records matching ``query`` (or every field of a filter, by equality), in its order (default:
        oldest first); filtering, ordering and the limit are done by SQLite."""
        query = query if isinstance(query, JobQuery) else JobQuery.make(query)
        check_columns(name for name, _ in query.fields)  # even for a JobFilter built with trusted()
        where, params = query.where()
        order, more = query.tail()
        out = JobRecordDict()
        with gc_paused():
            for rec in self._listed(where, [*params, *more], order):
                dict.__setitem__(out, rec.self_id, rec)
        return out

    def _listed(self, where: str, params: list[Any], order: str) -> list[JobRecord]:
        """``_query``, reading whole rows only for records not in the cache (a listing repeated by a
        kernel or the dashboard reads little more than each row's change number)."""
        keys = self._execute(f"SELECT rowid, seq FROM jobs {where} {order}", params)
        missing = set(self._cache.missing(seq for _, seq in keys))
        if len(missing) * 2 <= len(keys):
            chosen = [rowid for rowid, seq in keys if seq in missing]
            fresh: dict[int, tuple[int | None, JobRecord]] = {}
            for start in range(0, len(chosen), 500):
                part = chosen[start : start + 500]
                sql = f"SELECT rowid, seq, {FIELDS} FROM jobs WHERE rowid IN ({marks(part)})"
                fresh.update((row[0], (row[1], _row_to_record(row[2:]))) for row in self._execute(sql, part))
            out = []
            for rowid, seq in keys:
                record = self._cache.copy(seq) if seq is not None else None
                if record is None:
                    found = fresh.get(rowid)
                    if found is None or found[0] != seq:  # changed or deleted since: read all at once
                        break
                    self._cache.put(seq, found[1])
                    record = (self._cache.copy(seq) if seq is not None else None) or found[1]
                out.append(record)
            else:
                return out
        out = []  # one statement: one consistent view of the rows
        for row in self._execute(f"SELECT rowid, seq, {FIELDS} FROM jobs {where} {order}", params):
            record = _row_to_record(row[2:])
            self._cache.put(row[1], record)
            out.append((self._cache.copy(row[1]) if row[1] is not None else None) or record)
        return out

    def count(self, query: JobQuery | None = None) -> int:
        """How many records match ``query`` (its order and limit aside)."""
        where, params = (query or JobQuery()).where()
        return self._execute(f"SELECT COUNT(*) FROM jobs {where}", params)[0][0]

    def changes(self, since: int) -> Changes:
        """The records written and the ids deleted after change number ``since`` (0: all records), with
        the number to pass next time. Costs what changed, not the size of the history."""
        # The number is read first: nothing after ``since`` up to it can be missed.
        number, total = self._execute("SELECT seq, records FROM jobs_counter")[0]
        changed = self._query("WHERE seq > ?", [since], "ORDER BY seq")
        written = {r.self_id for r in changed}
        rows = self._execute("SELECT self_id FROM jobs_deleted WHERE seq > ?", [since])
        return Changes(number, total, changed, [row[0] for row in rows if row[0] not in written])

    def record_peaks(self, peaks: Iterable[tuple[str, str | None, int]]) -> None:
        """Raise ``max_rss`` to each ``(job_id, run_id, rss)`` where it is higher than the one recorded."""
        rows = [(rss, job_id, run_id, rss) for job_id, run_id, rss in peaks]
        if not rows:
            return
        try:
            with self._lock:
                self._conn.executemany(
                    "UPDATE jobs SET max_rss = ? WHERE self_id = ? AND run_id IS ? "
                    "AND (max_rss IS NULL OR max_rss < ?)",
                    rows,
                )
        except sqlite3.Error as exc:
            raise DatabaseError(f"job database {self.db_file}: {exc}") from exc

    def list_active(self) -> list[JobRecord]:
        """Records whose status is active (queued, starting, running or stopping)."""
        return self._query(f"WHERE status IN ({ACTIVE_SQL})")

    def list_in(self, statuses: Iterable[str]) -> list[JobRecord]:
        """Records whose status is one of ``statuses``."""
        wanted = list(statuses)
        return self._query(f"WHERE status IN ({marks(wanted)})", wanted)

    def ids_like(self, prefix: str) -> list[str]:
        """Job ids that start with ``prefix``."""
        sql = "SELECT self_id FROM jobs WHERE substr(self_id, 1, ?) = ?"
        rows = self._execute(sql, [len(prefix), prefix])
        return [row[0] for row in rows]

    def ids(self, query: JobQuery) -> list[str]:
        """The ids of the records matching ``query``, in its order."""
        where, params = query.where()
        order, more = query.tail()
        rows = self._execute(f"SELECT self_id FROM jobs {where} {order}", [*params, *more])
        return [row[0] for row in rows]

    def delete(self, job_id: str, side_suffixes: Iterable[str] = ()) -> None:
        """Remove a job's record and its files, with the files beside its exit file that end with one of
        ``side_suffixes`` (those its backend declares)."""
        record = self.get(job_id)
        if record is None:
            return
        paths = self.paths(record)
        for path in (*paths.own(), *paths.side(side_suffixes)):
            logs.remove_if_exists(path)
        self._execute("DELETE FROM jobs WHERE self_id = ?", [job_id])

    # -- output ----------------------------------------------------------------------------------

    def job_logs(self, job_id: str) -> tuple[str, str]:
        """``(stdout, stderr)`` of a job as text; empty strings for an unknown job."""
        record = self.get(job_id)
        if record is None:
            return "", ""
        out, err = self.log_paths(record)
        return logs.read_text(out), logs.read_text(err)

    def tail(self, job_id: str, n: int = 10, stream: str = "out") -> str:
        """The last ``n`` lines of a job's stdout (``stream="out"``) or stderr (``"err"``)."""
        record = self.get(job_id)
        if record is None:
            return ""
        return logs.tail_lines(self.log_paths(record)[logs.stream_index(stream)], n)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"JobDB({self.db_path!r})"
