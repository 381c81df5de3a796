"""How many jobs one process can run: ``python bench/many_jobs.py [N]`` (default 5,000) under the
default ``ulimit -n 1024``. Starts N ``sleep`` jobs, reports the fds it holds, then ends the jobs from
outside (SIGTERM to each program) and times until the reaper thread has recorded every end.
Project-only (0.6.2 holds a Python wrapper per job). Prints one Markdown line for the README."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import tempfile
import time

from nodejobs import Jobs


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    work = tempfile.mkdtemp(prefix="nodejobs-many-")
    with Jobs(work) as jobs:
        fds_before = len(os.listdir("/proc/self/fd"))
        t0 = time.perf_counter()
        records = [jobs.run(["sleep", "3600"], f"many-{i}") for i in range(n)]
        started = time.perf_counter() - t0
        fds = len(os.listdir("/proc/self/fd"))
        running = sum(r.status == "running" for r in records)
        t0 = time.perf_counter()
        for record in records:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(record.last_pid, signal.SIGTERM)
        while any(jobs.jobdb.get(r.self_id).is_active for r in records):
            time.sleep(0.05)
        recorded = time.perf_counter() - t0
    print(
        f"| {n:,} `sleep` jobs from one process, `ulimit -n {soft}` | {running:,} running; fds held "
        f"{fds_before} → {fds}; started in {started:.1f} s ({started / n * 1000:.1f} ms each); all {n:,} "
        f"ends recorded by the reaper {recorded:.1f} s after they were killed |"
    )
    return 0 if running == n else 1


if __name__ == "__main__":
    sys.exit(main())
