"""``JobDashboard``: built, clicked and watched updating itself, with no refresh call from the test."""

import threading

import pytest

from conftest import pid_alive, wait_until
from nodejobs_magics import JobDashboard
from nodejobs_magics.dashboard import logpane as logpane_module


@pytest.fixture
def make_dashboard(jobs):
    made = []

    def make(*args, **kwargs):
        kwargs.setdefault("refresh_interval", 0.05)
        made.append(JobDashboard(jobs, *args, **kwargs))
        return made[-1]

    yield make
    for dashboard in made:
        dashboard.close()


def gated(tmp_path, name, before="", after="", code=0):
    """A command that prints ``before``, waits for the file ``<tmp>/<name>``, prints ``after``, exits."""
    gate = tmp_path / name
    script = f"printf '{before}'; while [ ! -e {gate} ]; do sleep 0.02; done; printf '{after}'; exit {code}"
    return ["sh", "-c", script], gate


def status_of(dashboard, job_id):
    row = dashboard.rows.get(job_id)
    return row.values.get("status_name") if row else None


def test_table_shows_each_job_with_stable_css_classes(jobs, make_dashboard):
    jobs.run(["sleep", "30"], "train.v1")
    jobs.run(["sh", "-c", "sleep 0.1; exit 4"], "bad")
    jobs.wait("bad", 10)
    dashboard = make_dashboard()
    assert list(dashboard.rows) == ["bad", "train.v1"]  # newest first
    row = dashboard.rows["train.v1"]
    assert "nodejobs-row-train_v1" in row.box._dom_classes and "nodejobs-row" in row.box._dom_classes
    assert "nodejobs-status-running" in row.status._dom_classes and "running" in row.status.value
    assert row.pid.value == str(jobs.get_status("train.v1").last_pid) and "sleep 30" in row.command.value
    assert not row.stop_button.disabled and row.rerun_button.disabled
    bad = dashboard.rows["bad"]
    assert bad.exit_code.value == "4" and "nodejobs-status-failed" in bad.status._dom_classes
    assert bad.stop_button.disabled and not bad.rerun_button.disabled
    for css in ("nodejobs-stop", "nodejobs-rerun", "nodejobs-id", "nodejobs-duration", "nodejobs-started"):
        assert any(css in w._dom_classes for w in row.box.children), css
    assert "nodejobs-dashboard" in dashboard._dom_classes


def test_updates_itself_when_a_job_ends(jobs, make_dashboard, tmp_path):
    command, gate = gated(tmp_path, "gate", code=3)
    jobs.run(command, "g")
    dashboard = make_dashboard()
    assert status_of(dashboard, "g") == "running"
    gate.touch()
    wait_until(lambda: status_of(dashboard, "g") == "failed", message="the row to show failed")
    row = dashboard.rows["g"]
    assert row.exit_code.value == "3" and "nodejobs-status-failed" in row.status._dom_classes
    assert "nodejobs-status-running" not in row.status._dom_classes


def test_new_jobs_appear_and_removed_jobs_go(jobs, make_dashboard):
    jobs.run(["true"], "one")
    dashboard = make_dashboard()
    jobs.run(["true"], "two")
    wait_until(lambda: list(dashboard.rows) == ["two", "one"], message="the new row")
    jobs.wait("one", 10)
    jobs.remove("one")
    wait_until(lambda: list(dashboard.rows) == ["two"], message="the removed row to go")
    assert [c for c in dashboard.table.children[1:]] == [dashboard.rows["two"].box]


def test_log_pane_follows_new_output_of_the_selected_job(jobs, make_dashboard, tmp_path):
    command, gate = gated(tmp_path, "gate", before="first\\n", after="second\\n")
    jobs.run(command, "logged")
    dashboard = make_dashboard()
    assert dashboard.selected == "logged"  # the newest job is selected at first
    wait_until(lambda: "first" in dashboard.log_pane.text.value, message="the first line")
    gate.touch()
    wait_until(lambda: "second" in dashboard.log_pane.text.value, message="the second line")
    assert dashboard.log_pane.buffer == "first\nsecond\n"


def test_log_pane_reads_only_new_bytes_and_only_the_end_of_a_big_file(jobs, make_dashboard, monkeypatch):
    offsets = []
    read_from = logpane_module.logs.read_from

    def spy(path, offset, limit=1024 * 1024):
        offsets.append(offset)
        return read_from(path, offset, limit)

    monkeypatch.setattr(logpane_module.logs, "read_from", spy)
    jobs.run(["sh", "-c", "head -c 400000 /dev/zero | tr '\\0' x; echo; echo last line"], "big")
    jobs.wait("big", 10)
    dashboard = make_dashboard(log_lines=5)
    size = 400000 + 1 + len("last line\n")
    assert dashboard.log_pane.text.value.count("last line") == 1
    assert offsets[0] == size - dashboard.log_pane.window  # never the whole file
    wait_until(lambda: len(offsets) >= 4, message="a few refreshes")
    assert set(offsets[1:]) == {size}  # then nothing new is read


def test_stream_toggle_shows_stderr(jobs, make_dashboard):
    jobs.run(["sh", "-c", "echo to-out; echo to-err >&2"], "streams")
    jobs.wait("streams", 10)
    dashboard = make_dashboard()
    wait_until(lambda: "to-out" in dashboard.log_pane.text.value, message="stdout")
    dashboard.log_pane.stream.value = "err"
    assert "to-err" in dashboard.log_pane.text.value and "to-out" not in dashboard.log_pane.text.value


def test_clicking_an_id_selects_that_job(jobs, make_dashboard):
    for name in ("a", "b"):
        jobs.run(["sh", "-c", f"echo output-of-{name}"], name)
        jobs.wait(name, 10)
    dashboard = make_dashboard()
    dashboard.rows["a"].id_button.click()
    assert dashboard.selected == "a" and "nodejobs-selected" in dashboard.rows["a"].box._dom_classes
    assert "nodejobs-selected" not in dashboard.rows["b"].box._dom_classes
    wait_until(lambda: "output-of-a" in dashboard.log_pane.text.value, message="a's output")


def test_stop_and_rerun_buttons(jobs, make_dashboard):
    first = jobs.run(["sleep", "30"], "s")
    dashboard = make_dashboard(grace=1.0)
    dashboard.rows["s"].stop_button.click()
    wait_until(lambda: status_of(dashboard, "s") == "stopped", message="stopped")
    assert not pid_alive(first.last_pid) and not dashboard.rows["s"].rerun_button.disabled
    dashboard.rows["s"].rerun_button.click()
    wait_until(lambda: status_of(dashboard, "s") == "running", message="running again")
    assert jobs.get_status("s").last_pid != first.last_pid


def test_a_failed_action_shows_a_message(jobs, make_dashboard):
    jobs.run(["sleep", "30"], "busy")
    dashboard = make_dashboard()
    dashboard.rows["busy"].rerun_button.click()
    wait_until(lambda: "still running" in dashboard.message.value, message="the error message")


def test_status_filter_and_job_ids(jobs, make_dashboard):
    jobs.run(["sleep", "30"], "live")
    jobs.run(["true"], "done")
    jobs.wait("done", 10)
    dashboard = make_dashboard()
    dashboard.status_filter.value = "running"
    assert list(dashboard.rows) == ["live"]
    dashboard.status_filter.value = "ended"
    assert list(dashboard.rows) == ["done"] and "1 of 2 jobs" in dashboard.count_label.value
    assert list(make_dashboard(["live"]).rows) == ["live"]


def test_only_what_changed_is_redrawn(jobs, make_dashboard, monkeypatch):
    jobs.run(["true"], "still")
    jobs.wait("still", 10)
    dashboard = make_dashboard()
    changes = []
    row = dashboard.rows["still"]
    for widget in row.box.children:
        widget.observe(changes.append)
    dashboard.table.observe(changes.append, "children")
    dashboard.log_pane.text.observe(changes.append, "value")
    refreshes = threading.Semaphore(0)
    refresh = dashboard.refresh
    monkeypatch.setattr(dashboard, "refresh", lambda: (refresh(), refreshes.release()))
    for _ in range(3):
        assert refreshes.acquire(timeout=10)
    assert changes == []


def test_several_dashboards_and_close_stops_refreshing(jobs, make_dashboard, tmp_path):
    command, gate = gated(tmp_path, "gate")
    jobs.run(command, "shared")
    first, second = make_dashboard(), make_dashboard()
    gate.touch()
    for dashboard in (first, second):
        wait_until(lambda d=dashboard: status_of(d, "shared") == "finished", message="both updated")
    first.close()
    assert first.closed and not first._thread.is_alive() and first.rows == {}
    assert second._thread.is_alive()
    jobs.run(["true"], "later")
    wait_until(lambda: "later" in second.rows, message="the open one to go on")
    first.close()  # idempotent


def test_without_jobs_it_opens_and_closes_its_own(tmp_path):
    before = {t.name for t in threading.enumerate()}
    dashboard = JobDashboard(refresh_interval=0.05)
    assert dashboard.jobs.db_path == str(tmp_path / "home")  # $NODEJOBS_HOME
    dashboard.close()
    assert {t.name for t in threading.enumerate()} == before


def test_shows_the_newest_rows_with_a_count_and_usage_of_running_jobs(jobs, make_dashboard):
    for i in range(5):
        jobs.run(["true"], f"old-{i}")
        jobs.wait(f"old-{i}", 10)
    jobs.run(["sleep", "30"], "live")
    dashboard = make_dashboard(max_rows=3)
    assert list(dashboard.rows) == ["live", "old-4", "old-3"] and "3 of 6 jobs" in dashboard.count_label.value
    wait_until(lambda: dashboard.rows["live"].values.get("cpu", "").endswith("%"), message="CPU %")
    assert dashboard.rows["live"].values["rss"].endswith(("KB", "MB"))
    jobs.remove("old-4")
    wait_until(lambda: list(dashboard.rows) == ["live", "old-3", "old-2"], message="the next row to move up")
    assert "3 of 5 jobs" in dashboard.count_label.value


def test_a_refresh_reads_only_the_records_that_changed(jobs, make_dashboard, monkeypatch):
    import nodejobs.store.db as jobdb_module

    for i in range(200):
        jobs.jobdb.update_status({"self_id": f"h-{i}", "status": "finished", "started_at": float(i)})
    jobs.run(["sleep", "30"], "live")
    dashboard = make_dashboard(refresh_interval=3600)
    read = [0]
    original = jobdb_module._row_to_record
    monkeypatch.setattr(jobdb_module, "_row_to_record", lambda row: (read.__setitem__(0, read[0] + 1),
                                                                      original(row))[1])  # fmt: skip
    dashboard.refresh()
    assert read[0] <= 3  # the active job, and what changed: not the 200 of the history
    assert "100 of 201 jobs" in dashboard.count_label.value


def test_a_queued_job_shows_its_group_and_reason_and_stop_cancels_it(jobs, make_dashboard):
    jobs.set_limit("gpu", 1)
    jobs.run(["sleep", "30"], "first", group="gpu")
    jobs.run(["true"], "second", group="gpu")
    dashboard = make_dashboard()
    row = dashboard.rows["second"]
    assert "nodejobs-status-queued" in row.status._dom_classes and row.group.value == "gpu"
    assert "waiting for slot in group gpu (1/1 running)" in row.status.value
    assert not row.stop_button.disabled
    row.stop_button.click()
    wait_until(lambda: status_of(dashboard, "second") == "stopped", message="the queued job cancelled")
    assert jobs.get_status("second").reason == "stopped while queued"
    assert jobs.get_status("first").status == "running"
