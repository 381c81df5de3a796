"""``JobRecord``, ``JobFilter``, ``JobRecordDict`` and the job id rules."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

import nodejobs
from nodejobs import InvalidJobIdError, JobFilter, JobRecord, JobRecordDict, UnknownFieldError
from nodejobs.model.records import parse_ids, validate_job_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

BAD_IDS = [
    "",
    "/",
    "../x",
    "a/b",
    "a\\b",
    "a\x00b",
    "a\nb",
    "a\tb",
    "\x1b[31m",
    "a\x7fb",
    "a\x85b",  # C1 control character (NEL)
    "a\x9bb",  # C1 control character (CSI)
    "x" * 129,
    ".",
    "..",
    ".hidden",
    "-x",
    "a..b",
    "\ud800",  # a lone surrogate cannot become a file name
    "é" * 128,  # 128 characters, but 256 bytes: too long for a file name with its suffix
]


def test_public_import_paths_of_the_original_design():
    from nodejobs.jobs import Jobs as Jobs2
    from nodejobs.store.db import JobDB as J2
    from nodejobs.store.db import JobFilter as F2
    from nodejobs.store.db import JobRecord as R2
    from nodejobs.store.db import JobRecordDict as D2

    assert (J2, F2, R2, D2, Jobs2) == (nodejobs.JobDB, JobFilter, JobRecord, JobRecordDict, nodejobs.Jobs)
    assert issubclass(JobRecord, nodejobs.BaseData) and nodejobs.Processes


def test_status_constants_are_the_lower_case_words():
    s = JobRecord.Status
    assert (s.c_starting, s.c_running, s.c_stopping, s.c_stopped) == (
        "starting",
        "running",
        "stopping",
        "stopped",
    )
    assert (s.c_finished, s.c_failed, s.c_failed_start, s.c_failed_stop) == (
        "finished",
        "failed",
        "failed_start",
        "failed_stop",
    )
    assert nodejobs.JobStatus is s


def test_record_fields_are_keys_on_the_class_and_values_on_instances():
    rec = JobRecord(self_id="train", status="running", last_pid=12, last_update=T0)
    assert JobRecord.status == "status" and JobRecord.f_last_pid == "last_pid"
    assert rec.status == "running" and rec.last_pid == 12 and rec.last_update == T0
    assert rec.exit_code is None
    for field in ("self_id", "status", "last_update", "last_pid", "dirname", "cwd", "logdir", "logfile"):
        assert getattr(JobRecord, field) == field
    for field in ("command", "exit_code", "started_at", "ended_at", "pid_start", "supervisor_pid"):
        assert getattr(JobRecord, field) == field


def test_record_refuses_bad_status_and_bad_id():
    with pytest.raises(ValueError, match="status"):
        JobRecord(self_id="a", status="sleeping")
    with pytest.raises(InvalidJobIdError):
        JobRecord(self_id="../a")
    with pytest.raises(ValueError, match="self_id"):
        JobRecord(status="running")


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_validate_job_id_refuses(bad):
    with pytest.raises(InvalidJobIdError) as info:
        validate_job_id(bad)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("good", ["a", "train-1", "x" * 128, "run_2024.05", "a b", "ünï", "a.b-c_d"])
def test_validate_job_id_accepts(good):
    assert validate_job_id(good) == good


def test_validate_job_id_refuses_non_strings():
    for bad in (None, 5, b"abc"):
        with pytest.raises(InvalidJobIdError):
            validate_job_id(bad)


def test_is_active_and_duration():
    running = JobRecord(self_id="a", status="running", started_at=datetime.now(timezone.utc) - timedelta(5))
    assert running.is_active and running.duration >= 5 * 86400
    done = JobRecord(self_id="b", status="finished", started_at=T0, ended_at=T0 + timedelta(seconds=90))
    assert not done.is_active and done.duration == 90.0
    assert JobRecord(self_id="c").duration is None


def test_repr_html_escapes_values():
    html = JobRecord(self_id="a", command="echo <b>&</b>")._repr_html_()
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in html and "<b>" not in html


def test_filter_allows_every_record_field_and_nothing_else():
    assert set(JobFilter._types) == set(JobRecord._types)
    assert JobFilter().get("status") is None  # all optional
    assert JobFilter(status="running", self_id="a") == {"status": "running", "self_id": "a"}
    with pytest.raises(UnknownFieldError, match="colour"):
        JobFilter(colour="red")
    with pytest.raises(ValueError, match="status"):
        JobFilter(status="sleeping")


def test_record_dict_converts_dicts_to_records():
    records = JobRecordDict()
    records["a"] = {"self_id": "a", "status": "running"}
    assert isinstance(records["a"], JobRecord) and records["a"].status == "running"
    with pytest.raises(ValueError):
        records["b"] = {"self_id": "b", "status": "nonsense"}


def _sample() -> JobRecordDict:
    records = JobRecordDict()
    records["done"] = JobRecord(
        self_id="done",
        status="finished",
        command="echo hi",
        cwd="/tmp",
        last_pid=41,
        exit_code=0,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=2),
        last_update=T0 + timedelta(seconds=2),
    )
    records["live"] = JobRecord(
        self_id="live", status="running", command="sleep 9", last_pid=42, started_at=T0, last_update=T0
    )
    return records


def test_to_dataframe_has_real_dtypes_and_is_indexed_by_job_id():
    frame = _sample().to_dataframe()
    assert list(frame.index) == ["done", "live"]
    assert frame.index.name == "self_id"
    assert str(frame["exit_code"].dtype) == "Int64"
    assert str(frame["last_pid"].dtype) == "Int64"
    for col in ("started_at", "ended_at", "last_update"):
        assert isinstance(frame[col].dtype, pd.DatetimeTZDtype), col
        assert str(frame[col].dt.tz) == "UTC"
    assert frame.loc["done", "exit_code"] == 0
    assert pd.isna(frame.loc["live", "exit_code"]) and pd.isna(frame.loc["live", "ended_at"])
    assert frame.loc["done", "ended_at"] == pd.Timestamp(T0 + timedelta(seconds=2))
    assert frame.loc["done", "duration"] == pd.Timedelta(seconds=2)
    assert frame.loc["done", "status"] == "finished"
    assert set(frame.columns) >= {"status", "exit_code", "last_pid", "command", "cwd", "started_at"}


def test_to_dataframe_keeps_dtypes_when_no_job_has_ended():
    records = _sample()
    del records["done"]
    frame = records.to_dataframe()
    assert str(frame["exit_code"].dtype) == "Int64"
    assert isinstance(frame["ended_at"].dtype, pd.DatetimeTZDtype)


def test_to_dataframe_of_no_records_is_empty_with_the_columns():
    frame = JobRecordDict().to_dataframe()
    assert len(frame) == 0 and "status" in frame.columns
    assert str(frame["exit_code"].dtype) == "Int64"


def test_a_stored_id_list_is_parsed_by_one_function_for_records_and_the_queue():
    assert parse_ids('["a", "b"]') == ["a", "b"] == JobRecord(self_id="x", after='["a", "b"]').after_ids
    assert parse_ids('["a", 3]') == ["a"]
    assert parse_ids(None) == parse_ids("") == parse_ids("{}") == parse_ids("not json") == []
