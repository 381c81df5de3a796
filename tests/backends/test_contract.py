"""The contract every backend keeps (``nodejobs.backends.base.Backend``), run against each backend.

A backend joins by adding a ``Harness`` to ``HARNESSES``: how to make an instance, and a second
instance that sees the same jobs (a new process would, on a real machine or cluster). Deadlines are
generous: a cluster schedules in passes, and other tests' jobs may fill its node first.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from polling import wait_until
from slurm_cluster import require_cluster

from nodejobs.backends.base import ENDED, HELD, PENDING, RUNNING, Backend, JobSpec
from nodejobs.backends.fake import FakeBackend, FakeCluster
from nodejobs.backends.local.backend import LocalBackend
from nodejobs.backends.slurm.backend import SlurmBackend


@dataclass
class Harness:
    name: str
    make: Callable[[], Backend]  # every instance made by one harness sees the same jobs


def _fake() -> Harness:
    cluster = FakeCluster()
    return Harness("fake", lambda: FakeBackend(cluster))


def _local() -> Harness:
    return Harness("local", lambda: LocalBackend(reaper=False))


def _slurm() -> Harness:
    require_cluster()
    return Harness("slurm", lambda: SlurmBackend(min_interval=0.5, max_interval=2.0))


HARNESSES = {"local": _local, "fake": _fake, "slurm": _slurm}


def _param(name: str):
    return pytest.param(name, marks=[pytest.mark.slurm] if name == "slurm" else [])


@pytest.fixture(params=[_param(name) for name in sorted(HARNESSES)])
def harness(request) -> Harness:
    return HARNESSES[request.param]()


@pytest.fixture
def backend(harness):
    made = harness.make()
    yield made
    made.close()


@pytest.fixture
def spec(tmp_path):
    """``spec(command) -> JobSpec`` of a shell command with its files in ``tmp_path``."""

    def make(command: str, **options) -> JobSpec:
        run_id = uuid.uuid4().hex
        base = str(tmp_path / run_id[:8])
        return JobSpec(
            job_id=f"job-{run_id[:8]}", run_id=run_id, argv=["/bin/sh", "-c", command],
            env={**os.environ}, cwd=str(tmp_path), out_path=base + "_out.txt",
            err_path=base + "_errors.txt", exit_path=base + ".exit", **options,
        )  # fmt: skip

    return make


def started(backend: Backend, command_spec: JobSpec) -> dict:
    handle = backend.submit(command_spec)
    backend.release(handle)
    return handle


def final(backend: Backend, handle: dict, timeout: float = 30.0):
    assert backend.wait(handle, timeout), "the job did not end"
    return wait_until(lambda: (o := backend.observe([handle])[0]).ended and o, timeout, message="its end")


def test_a_held_job_does_not_run_until_released(backend, spec):
    job = spec("echo ran")
    handle = backend.submit(job)
    try:
        assert backend.observe([handle])[0].state == HELD
        assert not backend.wait(handle, 0.2)  # held: it neither runs nor ends
        with open(job.out_path) as out:
            assert out.read() == ""
    finally:
        backend.release(handle)
    seen = final(backend, handle)
    assert (seen.state, seen.exit_code, seen.started) == (ENDED, 0, True)
    assert open(backend.output(handle)[0]).read() == "ran\n"


def test_a_job_released_with_start_false_never_runs(backend, spec):
    job = spec("echo ran")
    handle = backend.submit(job)
    backend.release(handle, start=False)
    seen = final(backend, handle)
    assert seen.state == ENDED and seen.started is False
    assert open(job.out_path).read() == ""


@pytest.mark.parametrize("code", [0, 1, 3, 127])
def test_exit_codes(backend, spec, code):
    seen = final(backend, started(backend, spec(f"exit {code}")))
    assert (seen.state, seen.exit_code) == (ENDED, code)
    assert seen.ended_at is not None


def test_handles_are_json_and_ends_are_seen_after_the_submitter_is_gone(harness, spec):
    first = harness.make()
    handles = [started(first, spec("sleep 100")), started(first, spec("exit 4"))]
    text = json.dumps(handles)
    first.close()
    second = harness.make()
    try:
        again = json.loads(text)
        wait_until(lambda: second.observe(again)[1].ended, 60, message="the short job's end")
        running, ended = second.observe(again)
        assert running.state in (PENDING, RUNNING) and (ended.state, ended.exit_code) == (ENDED, 4)
        assert second.cancel([again[0]], grace=5.0) == [True]
        assert second.observe([again[0]])[0].ended
    finally:
        second.close()


def test_cancel_ends_a_job_that_exits_on_the_polite_signal(backend, spec):
    handle = started(backend, spec("sleep 100"))
    wait_until(lambda: backend.observe([handle])[0].state == RUNNING, 60, message="it to run")
    assert backend.cancel([handle], grace=30.0) == [True]
    seen = final(backend, handle, timeout=5.0)  # well within the grace: it went at the polite signal
    assert seen.exit_code == 143


def test_cancel_forces_a_job_that_ignores_the_polite_signal_after_the_grace(backend, spec):
    handle = started(backend, spec("trap '' TERM; echo ready; sleep 100; sleep 100"))
    wait_until(lambda: open(backend.output(handle)[0]).read() == "ready\n", 60, message="the trap to be set")
    assert backend.cancel([handle], grace=0.5) == [True]
    seen = final(backend, handle)
    assert seen.ended and seen.exit_code != 0


def test_cancel_with_no_grace_and_of_an_ended_job(backend, spec):
    handle = started(backend, spec("sleep 100"))
    assert backend.cancel([handle], grace=0.0) == [True]
    assert final(backend, handle).ended
    assert backend.cancel([handle], grace=0.0) == [True]  # already ended: nothing left to end


def test_many_handles_are_observed_in_one_call_in_order(backend, spec):
    handles = [started(backend, spec(f"exit {code}")) for code in (5, 0, 2, 9)]
    handles.append(started(backend, spec("sleep 100")))
    try:
        wait_until(lambda: all(o.ended for o in backend.observe(handles[:4])), 60, message="the four ends")
        seen = backend.observe(handles)
        assert [o.exit_code for o in seen[:4]] == [5, 0, 2, 9]
        assert seen[4].state in (PENDING, RUNNING)
    finally:
        backend.cancel([handles[4]], grace=1.0)


def test_wait_times_out_on_a_running_job_and_returns_at_its_end(backend, spec):
    handle = started(backend, spec("sleep 100"))
    assert backend.wait(handle, 0.1) is False
    backend.cancel([handle], grace=1.0)
    assert backend.wait(handle, 30.0) is True


def test_a_local_time_limit_counts_from_the_programs_start_not_from_the_hold(tmp_path):
    backend = LocalBackend(reaper=False)
    base = str(tmp_path / "held")
    job = JobSpec(
        job_id="held", run_id=uuid.uuid4().hex, argv=["true"], env={**os.environ}, cwd=str(tmp_path),
        out_path=base + "_out.txt", err_path=base + "_errors.txt", exit_path=base + ".exit", timeout=1.0,
    )  # fmt: skip
    handle = backend.submit(job)
    try:
        assert not backend.wait(handle, 2.5)  # held longer than its limit: the clock has not started
    finally:
        backend.release(handle)
    seen = final(backend, handle)
    assert (seen.exit_code, seen.timed_out) == (0, False)
    backend.close()


def test_forget_drops_nothing_the_end_needs(backend, spec):
    handle = started(backend, spec("exit 3"))
    assert final(backend, handle).exit_code == 3
    backend.forget(handle)
    backend.forget(handle)  # twice: nothing left to drop is not an error
    seen = backend.observe([handle])[0]
    assert (seen.state, seen.exit_code) == (ENDED, 3)


def test_every_file_beside_the_exit_file_is_declared(backend, spec, tmp_path):
    jobs = [spec("exit 0", timeout=600.0), spec("sleep 100", timeout=600.0)]
    ended, cancelled = [started(backend, job) for job in jobs]
    final(backend, ended)
    wait_until(lambda: backend.observe([cancelled])[0].state == RUNNING, 60, message="it to run")
    assert backend.cancel([cancelled], grace=1.0) == [True]
    for job in jobs:
        names = [str(path) for path in tmp_path.iterdir()]
        beside = {name.removeprefix(job.exit_path) for name in names if name.startswith(job.exit_path + ".")}
        assert beside <= set(backend.side_suffixes), beside
    assert len(set(backend.side_suffixes)) == len(backend.side_suffixes)
