"""``JobDB``: records in ``<db_path>/jobs.db``, partial updates, filters, claims and output files."""

import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone

import pytest

from nodejobs import (
    DatabaseError,
    InvalidJobIdError,
    JobDB,
    JobExistsError,
    JobFilter,
    JobRecord,
    JobRecordDict,
    UnknownFieldError,
)
from nodejobs.model.states import IllegalTransition
from nodejobs.store.paths import JobPaths

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def db(db_path):
    jobdb = JobDB(db_path)
    yield jobdb
    jobdb.close()


def rows(db) -> list[tuple]:
    with sqlite3.connect(db.db_file) as conn:
        return conn.execute("SELECT self_id, status FROM jobs ORDER BY rowid").fetchall()


def test_creates_database_and_log_directory_on_demand(tmp_path):
    path = tmp_path / "deep" / "er"
    db = JobDB(str(path))
    try:
        assert (path / "jobs.db").is_file()
        assert (path / "logs").is_dir()
        assert stat.S_IMODE(os.stat(path / "jobs.db").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path / "logs").st_mode) == 0o700
    finally:
        db.close()


def test_unusable_path_is_a_database_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseError, match="cannot open"):
        JobDB(str(blocker))


def test_update_status_inserts_and_round_trips_types(db):
    db.update_status(
        JobRecord(self_id="a", status="running", shell=True, last_pid=7, started_at=T0, command="x")
    )
    rec = db.get("a")
    assert isinstance(rec, JobRecord)
    assert (rec.status, rec.shell, rec.last_pid, rec.started_at, rec.command) == ("running", True, 7, T0, "x")
    assert rec.last_update.tzinfo == timezone.utc
    assert abs(rec.last_update - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_partial_record_updates_only_its_fields(db):
    db.update_status(JobRecord(self_id="a", status="running", command="sleep 9", last_pid=7))
    db.update_status({"self_id": "a", "status": "finished", "exit_code": 0})
    rec = db.get("a")
    assert (rec.status, rec.exit_code, rec.command, rec.last_pid) == ("finished", 0, "sleep 9", 7)


def test_update_status_refuses_bad_input_and_writes_nothing(db):
    with pytest.raises(InvalidJobIdError):
        db.update_status({"self_id": "../evil", "status": "running"})
    with pytest.raises(UnknownFieldError, match="colour"):
        db.update_status({"self_id": "a", "colour": "red"})
    with pytest.raises(ValueError, match="status"):
        db.update_status({"self_id": "a", "status": "sleeping"})
    assert rows(db) == []


def test_get_unknown_is_none_and_bad_id_is_refused(db):
    assert db.get("nobody") is None
    with pytest.raises(InvalidJobIdError):
        db.get("a/b")


def test_list_status_filters_by_equality(db):
    db.update_status(JobRecord(self_id="a", status="running", started_at=T0))
    db.update_status(JobRecord(self_id="b", status="finished", exit_code=0, started_at=T0 + timedelta(1)))
    db.update_status(JobRecord(self_id="c", status="finished", exit_code=1, started_at=T0 + timedelta(2)))
    everything = db.list_status()
    assert isinstance(everything, JobRecordDict)
    assert list(everything) == ["a", "b", "c"]  # oldest first
    assert list(db.list_status({"status": "finished"})) == ["b", "c"]
    assert list(db.list_status(JobFilter(status="finished", exit_code=1))) == ["c"]
    assert list(db.list_status({JobFilter.f_self_id: "a"})) == ["a"]
    assert list(db.list_status(JobFilter())) == ["a", "b", "c"]
    assert [r.self_id for r in db.list_active()] == ["a"]


def test_unknown_filter_key_is_an_error(db):
    with pytest.raises(UnknownFieldError, match="colour"):
        db.list_status({"colour": "red"})


def test_sql_looking_values_are_bound_as_parameters(db):
    sneaky = "x' OR '1'='1"
    db.update_status(JobRecord(self_id="a", status="running", command="echo 1"))
    db.update_status(JobRecord(self_id="b'; DROP TABLE jobs; --", command=sneaky))
    assert list(db.list_status({"self_id": sneaky})) == []
    assert list(db.list_status({"command": "echo 1' OR 1=1 --"})) == []
    assert list(db.list_status({"command": sneaky})) == ["b'; DROP TABLE jobs; --"]
    assert db.get("b'; DROP TABLE jobs; --").command == sneaky
    assert len(rows(db)) == 2


def test_claim_refuses_an_active_id_and_replaces_an_ended_one(db):
    db.claim(JobRecord(self_id="a", status="running", command="first", last_pid=1))
    with pytest.raises(JobExistsError, match="'a' is still running"):
        db.claim(JobRecord(self_id="a", status="starting", command="second"))
    assert db.get("a").command == "first"
    db.update_status({"self_id": "a", "status": "failed", "exit_code": 2, "reason": "boom"})
    db.claim(JobRecord(self_id="a", status="starting", command="second"))
    rec = db.get("a")
    assert (rec.status, rec.command) == ("starting", "second")
    assert rec.exit_code is None and rec.reason is None and rec.last_pid is None  # nothing stale kept
    assert isinstance(JobExistsError("x"), ValueError)


def test_update_run_is_a_compare_and_set_on_the_run_and_its_status(db):
    db.claim(JobRecord(self_id="a", status="starting", run_id="r1"))
    assert not db.update_run("a", "r2", "starting", {}, "running")  # another run
    assert not db.update_run("a", "r1", "stopping", {}, "stopped")  # it is not stopping
    assert db.update_run("a", "r1", "starting", {"last_pid": 7}, "running")
    assert db.update_run("a", "r1", "running", {"exit_code": 0}, "finished")
    assert not db.update_run("a", "r1", "running", {"exit_code": 1}, "failed")  # already ended
    assert (db.get("a").status, db.get("a").exit_code, db.get("a").last_pid) == ("finished", 0, 7)


def test_an_illegal_status_change_is_a_bug_that_raises(db):
    db.claim(JobRecord(self_id="a", status="starting", run_id="r1"))
    with pytest.raises(IllegalTransition):
        db.update_run("a", "r1", "starting", {}, "stopped")  # only a stopping job can become stopped
    with pytest.raises(IllegalTransition):
        db.update_status({"self_id": "a", "status": "queued"})
    with pytest.raises(ValueError):
        db.update_run("a", "r1", "starting", {}, "bogus")
    assert db.get("a").status == "starting"


def test_paths_of_a_job(db):
    rec = JobRecord(self_id="a")
    assert db.log_paths(rec) == (
        os.path.join(db.db_path, "logs", "a_out.txt"),
        os.path.join(db.db_path, "logs", "a_errors.txt"),
    )
    assert db.exit_path(rec) == os.path.join(db.db_path, "logs", "a.exit")
    custom = JobRecord(self_id="a", logdir="/elsewhere", logfile="b")
    assert db.log_paths(custom)[0] == "/elsewhere/b_out.txt"
    with pytest.raises(InvalidJobIdError):
        db.script_path("../a", ".py")


def test_job_logs_and_tail(db):
    db.update_status(JobRecord(self_id="a", status="finished"))
    out, err = db.log_paths(db.get("a"))
    with open(out, "wb") as f:
        f.write(b"1\n2\n3\n")
    with open(err, "wb") as f:
        f.write(b"bad \xff\n")
    assert db.job_logs("a") == ("1\n2\n3\n", "bad \ufffd\n")
    assert db.tail("a", 2) == "2\n3\n"
    assert db.tail("a", 1, stream="err") == "bad \ufffd\n"
    assert db.job_logs("nobody") == ("", "")
    assert db.tail("nobody") == ""
    with pytest.raises(ValueError, match="stream"):
        db.tail("a", 1, stream="both")


def test_delete_removes_record_and_files(db):
    db.update_status(JobRecord(self_id="a", status="finished"))
    paths = [*db.log_paths(db.get("a")), db.exit_path(db.get("a")), db.script_path("a", ".py")]
    for path in paths:
        with open(path, "w") as f:
            f.write("x")
    db.update_status(JobRecord(self_id="b", status="finished"))
    db.delete("a")
    db.delete("a")  # deleting twice is harmless
    assert db.get("a") is None and db.get("b") is not None
    assert not any(os.path.exists(p) for p in paths)


def test_delete_removes_the_side_files_its_caller_names_and_no_others(db):
    db.update_status(JobRecord(self_id="a", status="finished"))
    exit_path = db.exit_path(db.get("a"))
    for suffix in (".started", ".mine"):
        with open(exit_path + suffix, "w") as f:
            f.write("x")
    db.delete("a", side_suffixes=(".started",))
    assert not os.path.exists(exit_path + ".started") and os.path.exists(exit_path + ".mine")


def test_job_paths_trust_a_call_path_only_inside_the_log_directory(db):
    inside = os.path.join(db.logdir, "f-1_call.pkl")
    paths = JobPaths.of(JobRecord(self_id="f", call=inside), db.logdir)
    assert paths.calls() == [inside, os.path.join(db.logdir, "f-1_result.pkl")]
    assert JobPaths.of(JobRecord(self_id="f", call="/etc/passwd"), db.logdir).calls() == []
    assert JobPaths.of(JobRecord(self_id="f", call=inside + ".txt"), db.logdir).calls() == []
    assert paths.side([".go", ".nogo"]) == [paths.exit + ".go", paths.exit + ".nogo"]
    assert paths.pending == os.path.join(db.logdir, "f_pending.json")
    assert paths.script(".sh") == db.script_path("f", ".sh") == os.path.join(db.logdir, "f_script.sh")


def test_ids_like_matches_a_literal_prefix(db):
    for job_id in ("train-1", "train-2", "trainer-1", "tra_n-1"):
        db.update_status(JobRecord(self_id=job_id, status="finished"))
    assert sorted(db.ids_like("train-")) == ["train-1", "train-2"]
    assert db.ids_like("tra%") == []
    assert db.ids_like("tra_") == ["tra_n-1"]  # '_' is literal, not a LIKE wildcard


def test_two_handles_on_one_database_see_each_other(db_path):
    first, second = JobDB(db_path), JobDB(db_path)
    try:
        first.update_status(JobRecord(self_id="a", status="running"))
        assert second.get("a").status == "running"
        second.update_status({"self_id": "a", "status": "stopping"})
        assert first.get("a").status == "stopping"
        with sqlite3.connect(first.db_file) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        first.close()
        second.close()
