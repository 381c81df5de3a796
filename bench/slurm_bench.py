"""``python bench/slurm_bench.py [--submits 100] [--watch 1000 --seconds 60]``: nodejobs on the Slurm test
cluster (``scripts/slurm_setup.sh``), side by side with plain Slurm in one run; writes
``bench/slurm_results.json``.

1. Submitting: N jobs through ``Jobs(backend="slurm").run`` against N plain ``sbatch --parsable`` calls of
   the same kind of batch script (output files, job name, working directory), alternating rounds; the
   per-submission time of each and their ratio. The jobs are ``true``; each round's are cancelled after.
2. Polling cost: M active jobs (pending until their ``--begin`` an hour away, so they stay active)
   watched for S seconds by a refreshing dashboard (``JobDashboard``, every second) and a ``wait_all``
   in another thread; the number of ``squeue`` (and other Slurm) calls they made, against the number of
   refreshes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH))

from nodejobs import Jobs  # noqa: E402
from nodejobs.backends.slurm import cli as slurm_cli  # noqa: E402

SCRIPT = "#!/bin/sh\ntrue\n"


def scancel_all() -> None:
    subprocess.run(["scancel", "--me"], check=False)


def drained(timeout: float = 120.0) -> None:
    """Wait until Slurm lists none of our jobs (cancelled ones linger for a moment)."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "--me", "-h"], capture_output=True, text=True).stdout.strip():
        if time.monotonic() > deadline:
            raise SystemExit("Slurm did not forget the cancelled jobs")
        time.sleep(0.5)


def plain_sbatch(n: int, work: str) -> float:
    """Seconds per ``sbatch --parsable`` of a one-line script, with our kind of options (and, like ours,
    a start an hour away: nothing is scheduled while the submissions are timed)."""
    script = os.path.join(work, "plain.sbatch")
    with open(script, "w") as f:
        f.write(SCRIPT)
    begin = time.perf_counter()
    for i in range(n):
        subprocess.run(
            ["sbatch", "--parsable", f"--job-name=plain-{i}", f"--output={work}/plain-{i}_out.txt",
             f"--error={work}/plain-{i}_errors.txt", f"--chdir={work}", "--begin=now+3600", script],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    return (time.perf_counter() - begin) / n


def nodejobs_runs(n: int, work: str, round_no: int) -> float:
    """Seconds per ``Jobs(backend="slurm").run("true")``: a record, its batch script, one sbatch call."""
    jobs = Jobs(os.path.join(work, f"db{round_no}"), backend="slurm")
    try:
        begin = time.perf_counter()
        for i in range(n):
            jobs.run("true", f"job-{i}", at=3600)
        return (time.perf_counter() - begin) / n
    finally:
        jobs.close()


def nodejobs_sweep(n: int, work: str, round_no: int) -> float:
    """Seconds per job of ``Jobs(backend="slurm").map`` of N jobs: one array, one sbatch call."""
    jobs = Jobs(os.path.join(work, f"sweep{round_no}"), backend="slurm")
    try:
        begin = time.perf_counter()
        jobs.map("true {i}", [{"i": i} for i in range(n)], prefix="sweep")
        return (time.perf_counter() - begin) / n
    finally:
        jobs.close()


def bench_submits(n: int, rounds: int, work: str) -> dict:
    ours, plain, swept = [], [], []
    for r in range(rounds):  # alternating which goes first; an idle controller for each
        for side in ("plain", "ours") if r % 2 == 0 else ("ours", "plain"):
            if side == "plain":
                plain.append(plain_sbatch(n, work))
            else:
                ours.append(nodejobs_runs(n, work, r))
            scancel_all()
            drained()
        swept.append(nodejobs_sweep(n, work, r))
        scancel_all()
        drained()
    o, p, w = statistics.median(ours), statistics.median(plain), statistics.median(swept)
    return {"n": n, "rounds": rounds, "nodejobs_run_ms": round(o * 1000, 2), "sbatch_ms": round(p * 1000, 2),
            "ratio_run": round(o / p, 3), "nodejobs_map_ms_per_job": round(w * 1000, 2),
            "ratio_map": round(w / p, 3)}  # fmt: skip


def bench_watch(m: int, seconds: float, work: str) -> dict:
    from nodejobs_magics import JobDashboard

    jobs = Jobs(os.path.join(work, "watched"), backend="slurm")
    try:
        ids = [jobs.run("true", f"w{i}", at=3600).self_id for i in range(m)]
        jobs.list_status()
        start = slurm_cli.calls.total("squeue")
        others = slurm_cli.calls.total()
        dashboard = JobDashboard(jobs, refresh_interval=1.0, max_rows=m)
        waiter = threading.Thread(target=_wait_quietly, args=(jobs, ids, seconds), daemon=True)
        waiter.start()
        refreshes = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            dashboard.refresh()  # as its own timer would, once a second
            refreshes += 1
            time.sleep(1.0)
        waiter.join()
        dashboard.close()
        active = sum(1 for r in jobs.list_status(status="active").values())
        return {"jobs": m, "seconds": seconds, "dashboard_refreshes": refreshes,
                "squeue_calls": slurm_cli.calls.total("squeue") - start,
                "all_slurm_calls": slurm_cli.calls.total() - others, "still_active": active}  # fmt: skip
    finally:
        scancel_all()
        jobs.close()


def _wait_quietly(jobs: Jobs, ids: list[str], seconds: float) -> None:
    with contextlib.suppress(TimeoutError):  # they wait an hour: the watch ends first
        jobs.wait_all(ids, timeout=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submits", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--watch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="nodejobs-slurm-bench-")
    logging.getLogger("nodejobs.backends.slurm").setLevel(logging.ERROR)  # one node: /tmp is shared
    results = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}",
        "slurm": subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "submit": bench_submits(args.submits, args.rounds, work),
        "watch": bench_watch(args.watch, args.seconds, work),
    }
    print(json.dumps(results, indent=2))
    with open(os.path.join(BENCH, "slurm_results.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
