"""``JobDB``: job records in SQLite (``<db_path>/jobs.db``) and their output files in ``<db_path>/logs``.

Several processes may use one database at once: the database runs in WAL mode with a busy timeout,
and every write is one statement, or one ``transaction()`` (the queue's dispatch). Every status change
is a compare-and-set on the run (``run_id``) and
the status it leaves, checked against the transition table of ``states``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from . import logs
from .errors import DatabaseError, JobExistsError, UnknownFieldError
from .records import ACTIVE_STATUSES, JobFilter, JobRecord, JobRecordDict, JobStatus, validate_job_id
from .states import check_transition

__all__ = ["JobDB", "JobFilter", "JobRecord", "JobRecordDict"]

_SQL_TYPES = {
    str: "TEXT", int: "INTEGER", bool: "INTEGER", float: "REAL", datetime: "REAL", JobStatus: "TEXT",
}  # fmt: skip
COLUMNS = tuple(JobRecord._types)
_DATETIME_COLUMNS = frozenset(k for k, t in JobRecord._types.items() if t is datetime)
_BOOL_COLUMNS = frozenset(k for k, t in JobRecord._types.items() if t is bool)



def q(name: str) -> str:
    """A column name quoted as an SQL identifier (``group`` is an SQL keyword)."""
    return f'"{name}"'


_SELECT_COLUMNS = ", ".join(q(n) for n in COLUMNS)
_DDL = (
    "CREATE TABLE IF NOT EXISTS jobs ("
    + ", ".join(
        f"{q(name)} {_SQL_TYPES[kind]}{' PRIMARY KEY' if name == 'self_id' else ''}"
        for name, kind in JobRecord._types.items()
    )
    + ")",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)",
    "CREATE TABLE IF NOT EXISTS limits (name TEXT PRIMARY KEY, n INTEGER)",
)
_ACTIVE_SQL = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)

OUT_SUFFIX = "_out.txt"
ERR_SUFFIX = "_errors.txt"
EXIT_SUFFIX = ".exit"
SCRIPT_SUFFIX = "_script"
PENDING_SUFFIX = "_pending.json"


def _to_sql(key: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool):
        return int(value)
    return value


def _row_to_record(names: tuple[str, ...], row: tuple) -> JobRecord:
    data = {}
    for name, value in zip(names, row):
        if value is None:
            continue
        if name in _DATETIME_COLUMNS:
            value = datetime.fromtimestamp(value, timezone.utc)
        elif name in _BOOL_COLUMNS:
            value = bool(value)
        data[name] = value
    return JobRecord.trusted(data)


class JobDB:
    """SQLite storage of ``JobRecord`` rows plus the paths and reading of each job's output files."""

    def __init__(self, db_path: str, logdir: str | None = None) -> None:
        self.db_path = os.path.abspath(os.path.expanduser(db_path))
        self.logdir = os.path.abspath(logdir) if logdir else os.path.join(self.db_path, "logs")
        self.db_file = os.path.join(self.db_path, "jobs.db")
        self._lock = threading.RLock()
        try:
            os.makedirs(self.db_path, mode=0o700, exist_ok=True)  # private when nodejobs creates it
            os.makedirs(self.logdir, mode=0o700, exist_ok=True)
            if not os.path.exists(self.db_file):  # never open() an existing one: its close() would drop
                # the POSIX locks SQLite holds on it for this process's other connections
                os.close(os.open(self.db_file, os.O_RDONLY | os.O_CREAT, 0o600))  # never readable by others
            if os.stat(self.db_file).st_mode & 0o077:
                os.chmod(self.db_file, 0o600)
            self._conn = sqlite3.connect(
                self.db_file, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA busy_timeout = 30000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _DDL:
                self._conn.execute(statement)
            self._add_missing_columns()
        except (OSError, sqlite3.Error) as exc:
            if getattr(self, "_conn", None) is not None:
                self._conn.close()  # no open file left behind (it would keep a mount busy, for one)
            hint = "" if os.access(self.db_path, os.W_OK) else " (the directory is not writable)"
            raise DatabaseError(f"cannot open job database {self.db_file}: {exc}{hint}") from exc

    def _add_missing_columns(self) -> None:
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(jobs)")}
        for name, kind in JobRecord._types.items():
            if name not in present:
                self._conn.execute(f"ALTER TABLE jobs ADD COLUMN {q(name)} {_SQL_TYPES[kind]}")

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            with self._lock:
                return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseError(f"job database {self.db_file}: {exc}") from exc
        except (OverflowError, UnicodeEncodeError) as exc:  # a value SQLite cannot hold: nothing was written
            raise ValueError(f"job database {self.db_file}: cannot store a value: {exc}") from exc

    def _query(self, where: str = "", params: Iterable[Any] = ()) -> list[JobRecord]:
        sql = f"SELECT {_SELECT_COLUMNS} FROM jobs {where} ORDER BY coalesce(started_at, submitted_at), rowid"
        return [_row_to_record(COLUMNS, row) for row in self._execute(sql, params)]

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

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        """The rows of a read-only ``sql`` statement (for the queue's lean scans)."""
        return self._execute(sql, params)

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
        return dict(self._execute("SELECT name, n FROM limits"))  # type: ignore[arg-type]

    # -- paths -----------------------------------------------------------------------------------

    def _file_base(self, record: JobRecord) -> str:
        return os.path.join(record.logdir or self.logdir, record.logfile or record.self_id)

    def log_paths(self, record: JobRecord) -> tuple[str, str]:
        """``(stdout_path, stderr_path)`` of a job."""
        base = self._file_base(record)
        return base + OUT_SUFFIX, base + ERR_SUFFIX

    def exit_path(self, record: JobRecord) -> str:
        """Where a job's supervisor writes its exit code."""
        return self._file_base(record) + EXIT_SUFFIX

    def pending_path(self, record: JobRecord) -> str:
        """Where a queued job's environment waits until it starts (0600, deleted then)."""
        return self._file_base(record) + PENDING_SUFFIX

    def script_path(self, job_id: str, extension: str) -> str:
        """Where a job's script (from ``%%job``) is kept."""
        return os.path.join(self.logdir, validate_job_id(job_id) + SCRIPT_SUFFIX + extension)

    # -- records ---------------------------------------------------------------------------------

    def update_status(self, record: JobRecord | dict) -> None:
        """Insert or update a job; a partial record changes only the fields it holds.

        A change of status of a stored job must be one the transition table allows.
        """
        if not isinstance(record, JobRecord):
            record = JobRecord(record)
        _check_columns(record)
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
        only_if = f"jobs.status NOT IN ({_ACTIVE_SQL})" if replace else "0"
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
            (_to_sql(n, fields[n]) for n in names),
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
        _check_columns(fields)
        assignments = ", ".join(f"{q(n)} = ?" for n in fields)
        rows = self._execute(
            f"UPDATE jobs SET {assignments} "
            "WHERE self_id = ? AND run_id IS ? AND status = ? RETURNING self_id",
            [*(_to_sql(n, v) for n, v in fields.items()), job_id, run_id, old],
        )
        return bool(rows)

    def get(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, or None."""
        found = self._query("WHERE self_id = ?", [validate_job_id(job_id)])
        return found[0] if found else None

    def list_status(self, filter: JobFilter | dict | None = None) -> JobRecordDict:
        """Records matching every field of ``filter`` (equality; ``tags``: every tag given), oldest first."""
        if filter is not None and not isinstance(filter, JobFilter):
            filter = JobFilter(filter)
        criteria = {k: v for k, v in (filter or {}).items() if v is not None}
        _check_columns(criteria)  # even for a JobFilter built with trusted()
        tags = criteria.pop("tags", None) or {}
        if not isinstance(tags, dict):
            raise ValueError(f"JobFilter.tags: expected a dict of tags, not {tags!r}")
        clauses = [f"{q(k)} = ?" for k in criteria]
        params = [_to_sql(k, v) for k, v in criteria.items()]
        for key, value in tags.items():
            check_tag_key(key)
            clauses.append(f"json_extract(tags, '$.{key}') IS ?")
            params.append(int(value) if isinstance(value, bool) else value)
        where = " AND ".join(clauses)
        records = self._query(f"WHERE {where}" if where else "", params)
        out = JobRecordDict()
        for rec in records:
            dict.__setitem__(out, rec.self_id, rec)
        return out

    def list_active(self) -> list[JobRecord]:
        """Records whose status is active (queued, starting, running or stopping)."""
        return self._query(f"WHERE status IN ({_ACTIVE_SQL})")

    def list_in(self, statuses: Iterable[str]) -> list[JobRecord]:
        """Records whose status is one of ``statuses``."""
        wanted = list(statuses)
        return self._query(f"WHERE status IN ({', '.join('?' * len(wanted))})", wanted)

    def ids_like(self, prefix: str) -> list[str]:
        """Job ids that start with ``prefix``."""
        sql = "SELECT self_id FROM jobs WHERE substr(self_id, 1, ?) = ?"
        rows = self._execute(sql, [len(prefix), prefix])
        return [row[0] for row in rows]

    def delete(self, job_id: str) -> None:
        """Remove a job's record and its files."""
        record = self.get(job_id)
        if record is None:
            return
        for path in (*self.log_paths(record), self.exit_path(record), self.pending_path(record)):
            logs.remove_if_exists(path)
        for extension in (".sh", ".py"):
            logs.remove_if_exists(self.script_path(job_id, extension))
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


def check_tag_key(key: Any) -> str:
    """``key`` if it can name a tag (a Python identifier: it becomes a DataFrame column), else ValueError."""
    if not isinstance(key, str) or not key.isidentifier() or not key.isascii():
        raise ValueError(f"tag names must be identifiers (letters, digits, _; not starting with a digit), "
                         f"not {key!r}")  # fmt: skip
    return key


def _check_columns(fields: Iterable[str]) -> None:
    """Field names become SQL identifiers: only the schema's own are allowed."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise UnknownFieldError(f"unknown job field(s): {', '.join(sorted(map(repr, unknown)))}")

