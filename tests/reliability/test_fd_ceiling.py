"""The file-descriptor ceiling: the number of fds a launcher holds does not grow with its running jobs,
and a start that fails for lack of them raises nothing raw and leaves no job running untracked."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from polling import wait_until
from reliability_support import figure, processes_with_env

from nodejobs import Jobs

pytestmark = pytest.mark.reliability

PY = sys.executable

MANY_UNDER_A_LOW_LIMIT = textwrap.dedent(
    """
    import json, os, resource, sys
    from nodejobs import Jobs
    db, limit, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    with Jobs(db) as jobs:
        before = len(os.listdir("/proc/self/fd"))
        statuses = [jobs.run(["sleep", "120"], f"many-{i}").status for i in range(n)]
        during = len(os.listdir("/proc/self/fd"))
        print(json.dumps({"statuses": statuses, "before": before, "during": during}), flush=True)
        sys.stdin.readline()  # the test ends the jobs; the reaper thread must record every end
        import time
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(jobs.jobdb.get(f"many-{i}").is_active for i in range(n)):
            time.sleep(0.05)
        print(json.dumps([jobs.jobdb.get(f"many-{i}").status for i in range(n)]), flush=True)
    """
)


def test_600_jobs_run_under_a_limit_of_256_fds_and_their_ends_are_recorded(db_path):
    n = 600
    proc = subprocess.Popen(
        [PY, "-c", MANY_UNDER_A_LOW_LIMIT, db_path, "256", str(n)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = json.loads(proc.stdout.readline() or "null")
        assert started is not None, proc.stderr.read()
        assert set(started["statuses"]) == {"running"}
        assert started["during"] <= started["before"] + 4  # no fd per running job
        for pid in processes_with_env("NODEJOBS_JOB_ID", "many-"):
            with contextlib.suppress(ProcessLookupError):
                if os.getsid(pid) == pid:  # the programs (and supervisors) lead sessions of their own
                    os.killpg(pid, signal.SIGTERM)
        proc.stdin.write("\n")
        proc.stdin.flush()
        ended = json.loads(proc.stdout.readline() or "null")
        assert ended == ["failed"] * n, proc.stderr.read()  # killed by SIGTERM: exit code 143
    finally:
        for pid in processes_with_env("NODEJOBS_JOB_ID", "many-"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    figure("fd ceiling", f"{n} jobs running under ulimit -n 256; fds held: {started['during']}", None)


AT_THE_LIMIT_FROM_THREADS = textwrap.dedent(
    """
    import json, resource, sys, threading
    from nodejobs import Jobs, NodeJobsError
    db, limit = sys.argv[1], int(sys.argv[2])
    jobs = Jobs(db)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    outcomes = []
    def starter(t):
        for i in range(25):
            try:
                outcomes.append(jobs.run(["sleep", "120"], f"edge-{t}-{i}").status)
            except NodeJobsError as exc:
                outcomes.append(type(exc).__name__)
            except Exception as exc:
                outcomes.append("RAW " + repr(exc))
    threads = [threading.Thread(target=starter, args=(t,)) for t in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(json.dumps(outcomes), flush=True)
    """
)


def test_starts_at_the_fd_limit_raise_nothing_raw_and_leave_nothing_untracked(db_path):
    starter = [PY, "-c", AT_THE_LIMIT_FROM_THREADS, db_path, "48"]
    done = subprocess.run(starter, capture_output=True, text=True, timeout=300)
    try:
        outcomes = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(outcomes) == 400
        assert not [o for o in outcomes if o.startswith("RAW")], outcomes
        assert "failed_start" in outcomes or "DatabaseError" in outcomes, "the limit was never reached"
        with Jobs(db_path, reaper=False) as jobs:
            records = jobs.list_status()
            live = processes_with_env("NODEJOBS_JOB_ID", "edge-")
            tracked = {r.last_pid for r in records.values() if r.status == "running"}
            assert set(live) <= tracked | {r.supervisor_pid for r in records.values()}
            assert all(r.status in ("running", "failed_start") for r in records.values())
            started = sum(r.status == "running" for r in records.values())
    finally:
        for pid in processes_with_env("NODEJOBS_JOB_ID", "edge-"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not processes_with_env("NODEJOBS_JOB_ID", "edge-"), message="the jobs to end")
    figure("fd limit from 16 threads", f"400 starts at ulimit -n 48: {started} running, the rest "
           f"failed_start or DatabaseError; 0 raw errors, 0 untracked", None)  # fmt: skip
