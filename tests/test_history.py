"""A history that stays fast: listings filtered, ordered and limited in SQL, a change counter that
notices every write and deletion, ``clean`` by age and status, and the timeline picture."""

import threading
from datetime import datetime, timedelta, timezone

import pytest

import nodejobs.store.db as jobdb_module
from nodejobs import JobDB, Jobs, MissingExtraError
from nodejobs.model.states import STATUS_COLOURS
from nodejobs.store.query import JobQuery, parse_age

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fill(db: JobDB, n: int, prefix: str = "old") -> None:
    """``n`` ended records, one a minute from T0; every tenth failed."""
    for i in range(n):
        start = T0 + timedelta(minutes=i)
        db.update_status({
            "self_id": f"{prefix}-{i:04d}", "status": "failed" if i % 10 == 0 else "finished",
            "started_at": start, "ended_at": start + timedelta(seconds=30),
            "exit_code": 1 if i % 10 == 0 else 0, "cpu_time": 1.5, "max_rss": 1000 + i,
        })  # fmt: skip


@pytest.fixture
def history(jobs):
    fill(jobs.jobdb, 300)
    return jobs


def rows_read(monkeypatch) -> list[int]:
    """Count the records this thread builds from rows (every listing goes through ``_row_to_record``;
    the reaper thread's reads of a job that just ended are not the listing's cost)."""
    counter = [0]
    original = jobdb_module._row_to_record
    reader = threading.get_ident()

    def counting(row):
        if threading.get_ident() == reader:
            counter[0] += 1
        return original(row)

    monkeypatch.setattr(jobdb_module, "_row_to_record", counting)
    return counter


def test_newest_n_is_read_in_sql_not_filtered_in_python(history, monkeypatch):
    read = rows_read(monkeypatch)
    newest = history.list_status(order="newest", limit=5)
    assert list(newest) == [f"old-{i:04d}" for i in (299, 298, 297, 296, 295)]
    assert read[0] == 5


def test_status_sets_id_globs_prefixes_and_time_ranges(history):
    assert len(history.list_status(status="failed")) == 30
    assert len(history.list_status(status=["failed", "finished"])) == 300
    assert len(history.list_status(status="ended")) == 300 and not history.list_status(status="active")
    assert list(history.list_status(id_glob="old-000[0-2]")) == ["old-0000", "old-0001", "old-0002"]
    assert len(history.list_status(id_prefix="old-01")) == 100
    window = history.list_status(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=13))
    assert list(window) == ["old-0010", "old-0011", "old-0012"]
    assert len(history.list_status(since="1d")) == 0  # T0 is long ago
    assert list(history.list_status({"exit_code": 1}, order="newest", limit=1)) == ["old-0290"]
    assert history.count(status="failed") == 30 and history.count() == 300


@pytest.mark.parametrize(
    "criteria, message",
    [
        ({"order": "random"}, "order must be one of oldest, newest"),
        ({"limit": -1}, "limit must be a whole number >= 0"),
        ({"status": "sleeping"}, "unknown status 'sleeping'"),
        ({"since": "yesterday"}, "expected a time (ISO date) or an age"),
        ({"id_glob": "a*", "id_prefix": "a"}, "give id_glob or id_prefix, not both"),
    ],
)
def test_bad_criteria_are_one_line_errors(history, criteria, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        history.list_status(**criteria)
    assert "\n" not in str(caught.value)


def test_ages():
    assert parse_age("30d") == timedelta(days=30) and parse_age("2h") == timedelta(hours=2)
    assert parse_age(90) == timedelta(seconds=90) and parse_age("1w") == timedelta(weeks=1)
    for bad in ("-1d", "3x", "", "inf", True):
        with pytest.raises(ValueError):
            parse_age(bad)


def test_the_newest_listing_uses_the_start_time_index(jobs):
    where, params = JobQuery.make(order="newest", limit=10).where()
    order, more = JobQuery.make(order="newest", limit=10).tail()
    plan = jobs.jobdb._execute(f"EXPLAIN QUERY PLAN SELECT * FROM jobs {where} {order}", [*params, *more])
    assert any("jobs_order" in str(step) for step in plan), plan


def test_changes_since_a_number_are_the_written_and_the_deleted(history, monkeypatch):
    start = history.changes()
    assert start.total == 300 and len(start.changed) == 300
    history.run(["true"], "new")
    history.wait("new", 10)
    history.remove("old-0005")
    read = rows_read(monkeypatch)
    news = history.changes(start.number)
    assert [r.self_id for r in news.changed] == ["new"] and news.changed[0].status == "finished"
    assert news.deleted == ["old-0005"] and news.total == 300
    assert read[0] == 1  # the cost is what changed, not the history
    assert history.changes(news.number).changed == [] and history.changes(news.number).deleted == []


def test_a_rerun_after_a_removal_is_a_change_not_a_deletion(jobs):
    jobs.run(["true"], "again")
    jobs.wait("again", 10)
    before = jobs.changes().number
    jobs.remove("again")
    jobs.run(["true"], "again")
    jobs.wait("again", 10)
    news = jobs.changes(before)
    assert [r.self_id for r in news.changed] == ["again"] and news.deleted == []


def test_clean_by_age_and_status(history, tmp_path):
    history.run(["true"], "recent")
    history.wait("recent", 10)
    assert history.clean(older_than="30d", status="failed") == [f"old-{i:04d}" for i in range(0, 300, 10)]
    assert "recent" in history.list_status() and history.count() == 271
    assert len(history.clean(older_than=timedelta(days=30))) == 270
    assert list(history.list_status()) == ["recent"]
    assert history.clean(status="finished") == ["recent"]


def test_clean_refuses_active_statuses_and_bad_ages_changing_nothing(history):
    for bad in ({"status": "running"}, {"status": "active"}, {"older_than": "soon"}):
        with pytest.raises(ValueError):
            history.clean(**bad)
    assert history.count() == 300


def test_a_database_of_an_older_nodejobs_gets_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old"
    path.mkdir()
    conn = sqlite3.connect(path / "jobs.db")
    conn.execute("CREATE TABLE jobs (self_id TEXT PRIMARY KEY, status TEXT, started_at REAL)")
    conn.execute("INSERT INTO jobs VALUES ('legacy', 'finished', 1)")
    conn.commit()
    conn.close()
    with Jobs(str(path)) as jobs:
        assert jobs.get_status("legacy").cpu_time is None
        assert jobs.changes().total == 1 and [r.self_id for r in jobs.changes().changed] == ["legacy"]
        jobs.jobdb.update_status({"self_id": "legacy", "reason": "kept"})
        assert [r.self_id for r in jobs.changes(0).changed] == ["legacy"]


def test_timeline_draws_one_bar_per_job_in_the_status_colours(history):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    fig = history.timeline(status="ended", order="newest", limit=12)
    try:
        bars = fig.axes[0].patches
        assert type(fig).__name__ == "Figure" and len(bars) == 12
        colours = {to_hex(b.get_facecolor()) for b in bars}
        assert colours == {STATUS_COLOURS["finished"], STATUS_COLOURS["failed"]}
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert labels == [f"old-{i:04d}" for i in range(288, 300)]  # oldest at the top
    finally:
        plt.close(fig)


def test_timeline_without_matplotlib_is_a_one_line_error(history, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    message = r"^the timeline needs matplotlib: pip install 'nodejobs\[plot\]'$"
    with pytest.raises(MissingExtraError, match=message):
        history.timeline()


def test_a_repeated_listing_reads_whole_rows_only_for_what_changed(history, monkeypatch):
    first = history.list_status()
    first["old-0001"]["reason"] = "changed by the caller"  # a copy: the next listing is unaffected
    history.jobdb.update_status({"self_id": "old-0002", "reason": "written"})
    read = rows_read(monkeypatch)
    again = history.list_status()
    assert read[0] == 1 and list(again) == list(first)
    assert again["old-0002"].reason == "written" and again["old-0001"].reason is None
    assert again["old-0003"] == first["old-0003"]
    history.remove("old-0004")
    assert "old-0004" not in history.list_status() and len(history.list_status()) == 299
