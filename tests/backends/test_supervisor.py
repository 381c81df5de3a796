"""The supervisor both backends run, on this machine: what it promises whatever the timing."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

from nodejobs.backends.base import JobSpec
from nodejobs.backends.local.backend import LocalBackend


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
