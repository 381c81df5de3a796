"""The supervisor both backends run, on this machine: what it promises whatever the timing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

from polling import wait_until

from nodejobs.backends.base import JobSpec
from nodejobs.backends.local.backend import LocalBackend
from nodejobs.backends.supervisor import SUPERVISOR, supervisor_args


def test_a_time_limited_job_that_ends_at_once_is_not_kept_running_by_its_timer(tmp_path):
    # The supervisor ends the timer as soon as the program ends, maybe before the timer's subshell has
    # set its trap: a signal lost then kept the job "running" until its limit (here 600 s).
    backend = LocalBackend(reaper=False)

    def run_one(n: int) -> bool:
        base = str(tmp_path / f"job{n}")
        spec = JobSpec(
            job_id=f"job{n}", run_id=uuid.uuid4().hex, argv=["true"], env={**os.environ},
            cwd=str(tmp_path), out_path=base + "_out.txt", err_path=base + "_errors.txt",
            exit_path=base + ".exit", timeout=600.0,
        )  # fmt: skip
        handle = backend.submit(spec)
        backend.release(handle)
        ended = backend.wait(handle, 20.0)
        if not ended:
            backend.cancel([handle], grace=0.0)
        return ended

    try:
        with ThreadPoolExecutor(6) as pool:
            ended = list(pool.map(run_one, range(40)))
    finally:
        backend.close()
    assert ended.count(False) == 0


def _carriers(mark: bytes) -> list[int]:
    """The pids of processes whose environment holds ``mark``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if mark in f.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                continue
    return found


def _held_spec(tmp_path, command: str, **more) -> JobSpec:
    base = str(tmp_path / "held")
    return JobSpec(
        job_id="held", run_id=uuid.uuid4().hex, argv=["/bin/sh", "-c", command],
        env={**os.environ, "NODEJOBS_JOB_ID": "held"}, cwd=str(tmp_path), out_path=base + "_out.txt",
        err_path=base + "_errors.txt", exit_path=base + ".exit", **more,
    )  # fmt: skip


def _start_held(spec: JobSpec, grace: float = 0.5) -> subprocess.Popen:
    """The supervisor as a Slurm batch script runs it (held by a go-file), let go at once."""
    open(spec.exit_path + ".go", "w").close()
    args = supervisor_args(spec, grace, spec.exit_path, None)
    with open(spec.out_path, "w") as out, open(spec.err_path, "w") as err:
        return subprocess.Popen(["/bin/sh", SUPERVISOR, *args], stdout=out, stderr=err, env=spec.env,
                                start_new_session=True)  # fmt: skip


def test_a_held_jobs_watchdog_ends_the_run_when_its_supervisor_was_sigkilled(tmp_path):
    # A cluster's process tracking may lose what outlives the supervisor: the watchdog ends it.
    spec = _held_spec(tmp_path, "sleep 300 & (sleep 300 &) ; setsid sleep 300 & wait")
    supervisor = _start_held(spec)
    run_mark = f"NODEJOBS_RUN_ID={spec.run_id}".encode()
    try:
        wait_until(lambda: len(_carriers(run_mark)) == 4, 30, message="the payload and its three sleeps")
        supervisor.kill()
        supervisor.wait(10)
        wait_until(lambda: not _carriers(run_mark), 30, message="the watchdog ended the run")
        job_mark = b"NODEJOBS_JOB_ID=held"
        wait_until(lambda: not _carriers(job_mark), 30, message="nothing of the supervisor left")
    finally:
        for pid in _carriers(run_mark) + _carriers(b"NODEJOBS_JOB_ID=held"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_the_helpers_of_a_held_job_that_ends_at_once_end_with_it(tmp_path):
    # Its end signals the watchdog and the timer maybe before they have set their traps or noted
    # their naps' pids: an orphaned nap lived on for a day (the watchdog's) or the limit (the timer's).
    for n in range(20):
        (tmp_path / str(n)).mkdir()
    specs = [_held_spec(tmp_path / str(n), "true", timeout=600.0) for n in range(20)]
    supervisors = [_start_held(spec) for spec in specs]
    assert [s.wait(60) for s in supervisors] == [0] * len(specs)
    wait_until(lambda: not _carriers(b"NODEJOBS_JOB_ID=held"), 30, message="no nap of a helper left")
