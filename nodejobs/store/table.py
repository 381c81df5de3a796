"""The ``jobs`` table: its SQL (tables, indexes, the change counter's triggers), its columns, and the
conversion between a row and a ``JobRecord``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from nodejobs.errors import UnknownFieldError
from nodejobs.model.records import ACTIVE_STATUSES, JobRecord, JobStatus

SQL_TYPES = {
    str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER", datetime: "REAL", JobStatus: "TEXT",
}  # fmt: skip
COLUMNS = tuple(JobRecord._types)
_DATETIME_COLUMNS = tuple(k for k, t in JobRecord._types.items() if t is datetime)
_BOOL_COLUMNS = tuple(k for k, t in JobRecord._types.items() if t is bool)


def q(name: str) -> str:
    """A column name quoted as an SQL identifier (``group`` is an SQL keyword)."""
    return f'"{name}"'


FIELDS = ", ".join(q(n) for n in COLUMNS)
SELECT = f"SELECT {FIELDS} FROM jobs"
ORDER = "ORDER BY coalesce(started_at, submitted_at), rowid"
TABLE_COLUMNS = {**JobRecord._types, "seq": int}  # seq: the change counter's number of the row's last change
DDL = (
    "CREATE TABLE IF NOT EXISTS jobs ("
    + ", ".join(
        f"{q(name)} {SQL_TYPES[kind]}{' PRIMARY KEY' if name == 'self_id' else ''}"
        for name, kind in TABLE_COLUMNS.items()
    )
    + ")",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)",
    "CREATE TABLE IF NOT EXISTS limits (name TEXT PRIMARY KEY, n INTEGER)",
)
# The change counter: every insert, update and deletion of a row takes the next ``seq`` (in the same
# statement, by trigger), so a reader can ask for only what changed since the number it last saw. The
# counter's row also keeps the number of records.
CHANGES_DDL = (
    "CREATE TABLE IF NOT EXISTS jobs_counter (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL,"
    " records INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS jobs_deleted (self_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq)",
    "DROP INDEX IF EXISTS jobs_started",  # of an earlier version: by start time only
    # Covers listings: by start time, or a queued job's submission, then last change.
    "CREATE INDEX IF NOT EXISTS jobs_order ON jobs (coalesce(started_at, submitted_at), seq)",
    "CREATE INDEX IF NOT EXISTS jobs_deleted_seq ON jobs_deleted (seq)",
    "CREATE TRIGGER IF NOT EXISTS jobs_seq_insert AFTER INSERT ON jobs BEGIN"
    " UPDATE jobs_counter SET seq = seq + 1, records = records + 1;"
    " UPDATE jobs SET seq = (SELECT seq FROM jobs_counter) WHERE rowid = NEW.rowid;"
    " DELETE FROM jobs_deleted WHERE self_id = NEW.self_id; END",
    "CREATE TRIGGER IF NOT EXISTS jobs_seq_update AFTER UPDATE ON jobs WHEN NEW.seq IS OLD.seq BEGIN"
    " UPDATE jobs_counter SET seq = seq + 1;"
    " UPDATE jobs SET seq = (SELECT seq FROM jobs_counter) WHERE rowid = NEW.rowid; END",
    "CREATE TRIGGER IF NOT EXISTS jobs_seq_delete AFTER DELETE ON jobs BEGIN"
    " UPDATE jobs_counter SET seq = seq + 1, records = records - 1;"
    " INSERT OR REPLACE INTO jobs_deleted VALUES (OLD.self_id, (SELECT seq FROM jobs_counter)); END",
)
# Each run only when needed: a write at every open would contend with the other processes opening it.
COUNTER_START = (
    "INSERT OR IGNORE INTO jobs_counter VALUES (0, COALESCE((SELECT MAX(seq) FROM jobs), 0),"
    " (SELECT COUNT(*) FROM jobs))"
)
NUMBER_OLD_ROWS = "UPDATE jobs SET seq = seq WHERE seq IS NULL"  # older rows: numbered by trigger
ACTIVE_SQL = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)
STARTED = tuple(s for s in ACTIVE_STATUSES if s != JobStatus.c_queued)  # each holds a place in its group


def marks(values: Iterable[Any]) -> str:
    """One ``?`` per value, for ``IN (...)``."""
    return ", ".join("?" for _ in values)


def to_sql(key: str, value: Any) -> Any:
    """A field's value as SQLite stores it (times as timestamps, booleans as 0 or 1)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool):
        return int(value)
    return value


_new_record = JobRecord.__new__
_fromtimestamp = datetime.fromtimestamp
_UTC = timezone.utc


def row_to_record(row: tuple) -> JobRecord:
    """A record from a row of ``SELECT`` (the hot path of every listing: kept lean)."""
    record = _new_record(JobRecord)
    dict.update(record, {name: value for name, value in zip(COLUMNS, row) if value is not None})
    for name in _DATETIME_COLUMNS:
        value = dict.get(record, name)
        if value is not None:
            dict.__setitem__(record, name, _fromtimestamp(value, _UTC))
    for name in _BOOL_COLUMNS:
        value = dict.get(record, name)
        if value is not None:
            dict.__setitem__(record, name, bool(value))
    return record


def connect(db_file: str) -> sqlite3.Connection:
    """A connection to ``db_file`` (WAL, a busy timeout, autocommit; shared by threads under the caller's
    lock), its tables made or brought up to date."""
    conn = sqlite3.connect(db_file, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Writes touch several index pages: checkpoint every 256 KB of WAL (not 4 MB), keep it small.
        conn.execute("PRAGMA wal_autocheckpoint = 64")
        create(conn)
    except BaseException:
        conn.close()  # no open file left behind (it would keep a mount busy, for one)
        raise
    return conn


def create(conn: sqlite3.Connection) -> None:
    """Create the tables, indexes and triggers that are missing, and bring an earlier version's up to
    date (each write only when needed: a write at every open would contend with other processes)."""
    for statement in DDL:
        conn.execute(statement)
    _add_missing_columns(conn)
    for statement in CHANGES_DDL:
        conn.execute(statement)
    if conn.execute("SELECT 1 FROM jobs_counter").fetchone() is None:
        conn.execute(COUNTER_START)
    if conn.execute("SELECT 1 FROM jobs WHERE seq IS NULL LIMIT 1").fetchone() is not None:
        conn.execute(NUMBER_OLD_ROWS)


def _missing_columns(conn: sqlite3.Connection) -> dict[str, type]:
    present = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    return {name: kind for name, kind in TABLE_COLUMNS.items() if name not in present}


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a table of an earlier version up to date; in one write transaction, looking again inside
    it, since another process may be opening the same database for the first time too."""
    if not _missing_columns(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name, kind in _missing_columns(conn).items():
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {q(name)} {SQL_TYPES[kind]}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def check_columns(fields: Iterable[str]) -> None:
    """Field names become SQL identifiers: only the schema's own are allowed."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise UnknownFieldError(f"unknown job field(s): {', '.join(sorted(map(repr, unknown)))}")
