"""The backend-neutral lifecycle, driven deterministically through the in-memory fake backend."""

import json
import threading

import pytest
from polling import wait_until

from nodejobs import Jobs
from nodejobs.backends.fake import FakeBackend, FakeCluster
from nodejobs.engine.lifecycle import LAUNCHER_LOST_REASON, NOT_STARTED_REASON
from nodejobs.errors import DatabaseError


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def fake_jobs(db_path, cluster):
    with Jobs(db_path, backend=FakeBackend(cluster)) as jobs:
        yield jobs


def handle_of(jobs, job_id):
    return json.loads(jobs.get_status(job_id).handle)


def test_a_run_is_held_until_recorded_then_released(fake_jobs, cluster):
    record = fake_jobs.run("sleep 100", "a")
    assert (record.status, record.backend) == ("running", "fake")
    assert cluster.calls["submit"] == 1 and cluster.calls["release"] == 1
    job = cluster.jobs[handle_of(fake_jobs, "a")["id"]]
    assert job.state == "running" and job.spec.run_id == record.run_id


@pytest.mark.parametrize(
    "code, status",
    [(0, "finished"), (3, "failed"), (137, "failed"), (126, "failed_start"), (127, "failed_start")],
)
def test_an_observed_end_is_folded_by_exit_code_alone(fake_jobs, cluster, code, status):
    fake_jobs.run("sleep 100", "a")
    cluster.finish(handle_of(fake_jobs, "a"), code)
    record = fake_jobs.get_status("a")
    assert (record.status, record.exit_code) == (status, code)
    assert record.ended_at >= record.started_at
    if status == "failed_start":
        assert "nodejobs logs a --err" in record.reason


def test_a_refused_submission_is_failed_start_with_the_backends_reason(fake_jobs, cluster):
    cluster.refuse = "invalid partition specified: nope"
    record = fake_jobs.run("sleep 1", "a")
    assert (record.status, record.reason) == ("failed_start", "invalid partition specified: nope")
    assert "invalid partition" in fake_jobs.job_logs("a")[1]


def test_active_jobs_of_a_backend_are_observed_in_one_call(fake_jobs, cluster):
    for i in range(5):
        fake_jobs.run("sleep 100", f"j{i}")
    before = cluster.calls["observe"]
    assert len(fake_jobs.list_status()) == 5
    assert cluster.calls["observe"] == before + 1


def test_stop_cancels_with_the_grace_and_records_stopped(fake_jobs, cluster):
    fake_jobs.run("sleep 100", "a")
    record = fake_jobs.stop("a", grace=7)
    assert (record.status, record.exit_code) == ("stopped", 143)
    assert cluster.jobs[handle_of(fake_jobs, "a")["id"]].cancels == [7]
    assert fake_jobs.stop("a").status == "stopped"  # again: nothing changes


def test_a_start_whose_launcher_died_before_it_had_a_handle_is_failed_start(fake_jobs):
    logdir = fake_jobs.jobdb.logdir
    record = fake_jobs.lifecycle.new_record("lost", "fake", command="x", cwd="/", logdir=logdir)
    record.update(launcher_pid=2**22 + 1, launcher_start=1)  # no such process
    fake_jobs.jobdb.claim(record)
    final = fake_jobs.get_status("lost")
    assert (final.status, final.reason) == ("failed_start", LAUNCHER_LOST_REASON)


def test_one_database_holds_jobs_of_two_backends_each_observed_by_its_own(db_path, fake_jobs, cluster):
    with Jobs(db_path) as local_jobs:
        local_jobs.run(["sleep", "100"], "local-job")
        fake_jobs.run("sleep 100", "fake-job")
        listing = fake_jobs.list_status()  # observes the local job through the local backend
        assert {i: (r.backend, r.status) for i, r in listing.items()} == {
            "local-job": ("local", "running"),
            "fake-job": ("fake", "running"),
        }
        assert local_jobs.stop("local-job", grace=1).status == "stopped"
        assert fake_jobs.get_status("local-job").status == "stopped"


class GatedFake(FakeBackend):
    """A fake whose ``submit`` waits for a gate: a start caught half-way."""

    def __init__(self, cluster, gate):
        super().__init__(cluster)
        self.gate = gate
        self.entered = threading.Event()

    def submit(self, spec):
        self.entered.set()
        self.gate.wait(30)
        return super().submit(spec)


def test_stop_during_another_threads_start_returns_the_final_record(db_path, cluster):
    gate = threading.Event()
    backend = GatedFake(cluster, gate)
    with Jobs(db_path, backend=backend) as jobs:
        started = {}
        starter = threading.Thread(target=lambda: started.setdefault("r", jobs.run("sleep 100", "a")))
        starter.start()
        assert backend.entered.wait(30)
        stopped = {}
        stopper = threading.Thread(target=lambda: stopped.setdefault("r", jobs.stop("a", grace=1)))
        stopper.start()
        wait_until(lambda: jobs.jobdb.get("a").status == "stopping", message="the stop to begin")
        gate.set()
        starter.join(30)
        stopper.join(30)
    assert (stopped["r"].status, stopped["r"].reason) == ("stopped", NOT_STARTED_REASON)
    assert started["r"].status == "stopped"
    assert all(job.state == "ended" and not job.started for job in cluster.jobs.values())  # it never ran


def fail_writes(monkeypatch, jobdb, error, when):
    """Make ``jobdb.update_run`` raise ``error`` for the writes ``when(old, new)`` picks (until undone)."""
    real = jobdb.update_run

    def update_run(job_id, run_id, old, fields, new=None):
        if when(old, new):
            raise error
        return real(job_id, run_id, old, fields, new)

    monkeypatch.setattr(jobdb, "update_run", update_run)


def test_a_start_that_cannot_be_recorded_never_runs_and_a_stop_does_not_wait_for_it(
    fake_jobs, cluster, monkeypatch
):
    full = DatabaseError("job database jobs.db: database or disk is full")
    fail_writes(monkeypatch, fake_jobs.jobdb, full, lambda old, new: old == "starting")
    with pytest.raises(DatabaseError, match="disk is full"):
        fake_jobs.run("sleep 100", "a")
    assert fake_jobs.jobdb.get("a").status == "starting"  # nothing could be written
    assert all(job.state == "ended" and not job.started for job in cluster.jobs.values())  # let go unrun
    assert len(fake_jobs.list_status()) == 1  # a listing works while the end cannot be recorded
    assert fake_jobs.get_status("a").status == "failed_start"  # and the job reports its end
    assert fake_jobs.jobdb.get("a").status == "starting"
    monkeypatch.undo()  # room again: the same process records the end at once, never waits out the start
    record = fake_jobs.stop("a", grace=1)
    assert (record.status, record.reason) == ("failed_start", f"the start was interrupted ({full!r})")


def test_a_start_interrupted_after_its_run_was_let_go_is_followed_not_failed(fake_jobs, cluster, monkeypatch):
    fail_writes(monkeypatch, fake_jobs.jobdb, KeyboardInterrupt(), lambda old, new: new == "running")
    with pytest.raises(KeyboardInterrupt):
        fake_jobs.run("sleep 100", "a")
    monkeypatch.undo()
    assert fake_jobs.get_status("a").status == "running"  # its backend runs it: observed, not failed_start
    cluster.finish(handle_of(fake_jobs, "a"), 0)
    assert (fake_jobs.get_status("a").status, fake_jobs.get_status("a").exit_code) == ("finished", 0)
