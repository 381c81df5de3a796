"""Hostile input: generated job ids, records and filters are refused or handled, and nothing is ever
written outside the database directory. (Command lines: test_hostile_lines.py.)"""

import os
import string
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import count_tried as _count
from reliability_support import inside as _inside
from reliability_support import tree as _tree

from nodejobs import (
    InvalidJobIdError,
    JobDB,
    JobFilter,
    JobRecord,
    Jobs,
    JobStatus,
    UnknownFieldError,
)
from nodejobs.model.records import validate_job_id
from nodejobs.store.paths import ERR_SUFFIX, EXIT_SUFFIX, OUT_SUFFIX, SCRIPT_SUFFIX

pytestmark = pytest.mark.reliability

NASTY_IDS = [
    "..",
    ".",
    "../x",
    "a/../b",
    "a/b",
    "/etc/passwd",
    "a\\b",
    "a\x00b",
    "\x00",
    "tab\there",
    "new\nline",
    "esc\x1b[31m",
    "del\x7f",
    "c1\x85",
    "-rf",
    "--all",
    ".hidden",
    "...",
    "a..b",
    "~",
    "~root",
    "$HOME",
    "$(touch pwned)",
    "`touch pwned`",
    "a;rm -rf x",
    "a b",
    "'quote",
    '"dq',
    "é",
    "名前",
    "🙂",
    "\u202eevil",
    "\ud800",
    "\udcff",
    "x" * 128,
    "x" * 129,
    "é" * 100,
    "é" * 101,
    "🙂" * 50,
    "🙂" * 51,
    "CON",
    "nul",
    "a" * 100_000,
    "%",
    "_",
    "*",
    "?",
    "[a]",
    "a'; DROP TABLE jobs; --",
]
SQL_LIKE = [
    "' OR '1'='1",
    "x'; DROP TABLE jobs; --",
    '" OR 1=1 --',
    "running' --",
    "1; DELETE FROM jobs",
    "%",
    "_",
    "*",
    "') OR ('a'='a",
    "\\",
    "\x00",
    "status = 'running'",
    "1=1",
    "jobs",
    "self_id",
]
id_text = st.one_of(
    st.sampled_from(NASTY_IDS),
    st.text(max_size=300),
    st.text(
        alphabet=st.sampled_from([*string.printable, "é", "🙂", "\x00", "\u202e", "/", "."]), max_size=260
    ),
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY_IDS), st.text(max_size=20)),
)


@settings(max_examples=600, deadline=None)
@given(job_id=id_text)
def test_job_ids_are_refused_or_safe_file_names(tmp_path_factory, job_id):
    _count("job ids (validation)")
    try:
        validate_job_id(job_id)
    except InvalidJobIdError:
        return
    _count("job ids accepted (each a safe file name)")
    assert job_id and "/" not in job_id and "\\" not in job_id and "\x00" not in job_id
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in job_id)
    assert ".." not in job_id and not job_id.startswith((".", "-"))
    assert os.path.basename(job_id) == job_id
    logdir = str(tmp_path_factory.getbasetemp() / "ids")
    for suffix in (OUT_SUFFIX, ERR_SUFFIX, EXIT_SUFFIX, SCRIPT_SUFFIX + ".py"):
        path = os.path.join(logdir, job_id + suffix)
        assert os.path.dirname(os.path.normpath(path)) == logdir
        assert len((job_id + suffix).encode()) <= 255  # fits NAME_MAX: the files can really be made


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job_id=id_text)
def test_running_with_hostile_ids_writes_only_inside_the_database_directory(tmp_path, job_id):
    _count("job ids (run end to end)")
    root = str(tmp_path / "root")
    db = os.path.join(root, "db")
    os.makedirs(root, exist_ok=True)
    cwd_before = set(os.listdir(os.getcwd()))
    with Jobs(db) as jobs:
        before = _tree(root)
        try:
            record = jobs.run(["/bin/echo", "ok"], job_id)
        except InvalidJobIdError:
            assert jobs.list_status() == {}
        else:
            assert record.self_id == job_id
            assert jobs.wait(job_id, timeout=10).status == "finished"
            assert jobs.job_logs(job_id) == ("ok\n", "")
            jobs.remove(job_id)
        created = _tree(root) - before
        assert all(_inside(path, db) for path in created), created
    assert set(os.listdir(os.getcwd())) == cwd_before


field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=50),
    st.sampled_from(SQL_LIKE + sorted(JobStatus.values())),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(3000, 1, 1)),
    st.datetimes(
        timezones=st.just(timezone.utc), min_value=datetime(1900, 1, 1), max_value=datetime(3000, 1, 1)
    ),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
field_names = st.one_of(
    st.sampled_from(sorted(JobRecord._types)), st.sampled_from(SQL_LIKE), st.text(max_size=20)
)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory):
    db = JobDB(str(tmp_path_factory.mktemp("records") / "db"))
    yield db
    db.close()


@settings(max_examples=500, deadline=None)
@given(data=st.dictionaries(field_names, field_values, max_size=6), job_id=id_text)
def test_records_are_validated_and_stored_or_refused_whole(shared_db, data, job_id):
    _count("records")
    try:
        record = JobRecord({**data, "self_id": job_id})
    except (TypeError, ValueError):  # InvalidJobIdError and UnknownFieldError are ValueErrors
        return
    for key, value in record.items():
        kind = JobRecord._types.get(key)
        if kind is None or value is None:
            continue
        if kind is JobStatus:
            assert value in JobStatus.values()
        elif kind is datetime:
            assert isinstance(value, datetime) and value.tzinfo is not None
        elif kind is int:
            assert isinstance(value, int) and not isinstance(value, bool)
        else:
            assert isinstance(value, kind)
    rows_before = shared_db._execute("SELECT count(*) FROM jobs")[0][0]
    try:
        shared_db.update_status(record)
    except (UnknownFieldError, ValueError) as exc:  # refused whole, with a nodejobs/ValueError
        assert shared_db._execute("SELECT count(*) FROM jobs")[0][0] == rows_before, exc
        return
    _assert_stored_as_given(shared_db, job_id, record)


def _assert_stored_as_given(db, job_id, record):
    """The database gives back every field of ``record`` (times to the millisecond); then forget it."""
    stored = db.get(job_id)
    for key, value in record.items():
        if isinstance(value, datetime):
            assert abs((stored[key] - value).total_seconds()) < 1e-3
        else:
            assert stored.get(key) == value, key
    db.delete(job_id)


def _typed_value(kind):
    hostile_text = st.one_of(st.text(max_size=40), st.sampled_from([*SQL_LIKE, "\ud800", "\udcff", "a\x00b"]))
    return {
        str: hostile_text,
        int: st.integers(min_value=-(2**70), max_value=2**70),
        bool: st.booleans(),
        float: st.floats(allow_nan=False),  # NaN is stored by SQLite as NULL
        datetime: st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-11))])),
        JobStatus: st.sampled_from(sorted(JobStatus.values())),
    }[kind]


typed_records = st.fixed_dictionaries(
    {}, optional={k: _typed_value(t) for k, t in JobRecord._types.items() if k != "self_id"}
)


@settings(max_examples=400, deadline=None)
@given(data=typed_records, job_id=id_text)
def test_well_typed_records_round_trip_or_are_refused_with_a_value_error(shared_db, data, job_id):
    _count("records")
    try:
        record = JobRecord({**data, "self_id": job_id})
    except ValueError:  # a bad id, log file name or log directory
        return
    shared_db.delete(job_id)
    try:
        shared_db.update_status(record)
    except ValueError as exc:  # a value SQLite cannot hold (a 70-bit int, a lone surrogate): refused whole
        assert shared_db.get(job_id) is None, exc
        return
    _assert_stored_as_given(shared_db, job_id, record)


@settings(max_examples=400, deadline=None)
@given(criteria=st.dictionaries(field_names, field_values, max_size=4))
def test_filters_with_sql_looking_keys_and_values_are_refused_or_plain_equality(shared_db, criteria):
    _count("filters")
    if not shared_db.get("keep-me"):
        shared_db.update_status({"self_id": "keep-me", "status": "finished", "command": "' OR 1=1 --"})
    try:
        found = shared_db.list_status(criteria)
    except (TypeError, ValueError):
        pass
    else:
        wanted = {k: v for k, v in JobFilter(criteria).items() if v is not None}
        for record in found.values():
            assert all(record[k] == v for k, v in wanted.items() if not isinstance(v, (datetime, float)))
    assert shared_db.get("keep-me").command == "' OR 1=1 --"
    assert shared_db._execute("PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize(
    "key", [*(k for k in SQL_LIKE if k not in JobRecord._types), "status; DROP TABLE jobs"]
)
def test_trusted_filters_and_updates_cannot_name_sql(shared_db, key):
    _count("filters")
    shared_db.update_status({"self_id": "target", "status": "running"})
    with pytest.raises(UnknownFieldError):
        shared_db.list_status(JobFilter.trusted({key: "x"}))
    with pytest.raises(UnknownFieldError):
        shared_db.update_run("target", None, "running", {key: "x"})
    assert shared_db.get("target").status == "running"
    assert shared_db.ids_like("%") == [] and shared_db.ids_like("_") == []
