"""``python bench/queue_drain.py [-n 1000]``: drain N ``true`` jobs through a limit of 2, nodejobs against
task-spooler (``tsp -S 2``), side by side in one run; writes ``bench/queue_results.json``.

For each: the per-job enqueue cost (the submitting loop's time / N; for nodejobs both the API,
``Jobs.run(..., group=...)``, and the ``nodejobs run`` command for a sample) and the wall time from the
first enqueue to the last job's end. Completion is watched from the jobs' exit files (no API call, which
would itself move the queue), resp. ``tsp -l``, every 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import psutil

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from nodejobs import Jobs  # noqa: E402


def tsp_binary() -> str:
    for name in ("tsp", "ts"):
        path = shutil.which(name)
        if path and "task" in subprocess.run([path, "-h"], capture_output=True, text=True).stdout.lower():
            return path
    raise SystemExit("task-spooler not found: apt-get install -y task-spooler")


def bench_tsp(n: int, work: str) -> dict:
    tsp = tsp_binary()
    env = {**os.environ, "TS_SOCKET": os.path.join(work, "tsp.socket"), "TMPDIR": work,
           "TS_MAXFINISHED": str(n + 10)}  # fmt: skip
    subprocess.run([tsp, "-K"], env=env, capture_output=True)
    subprocess.run([tsp, "-S", "2"], env=env, check=True)
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run([tsp, "true"], env=env, check=True, stdout=subprocess.DEVNULL)
    enqueued = time.perf_counter()
    while True:
        listing = subprocess.run([tsp, "-l"], env=env, capture_output=True, text=True).stdout
        if listing.count(" finished ") >= n:
            break
        time.sleep(0.02)
    end = time.perf_counter()
    subprocess.run([tsp, "-K"], env=env, capture_output=True)
    return {"enqueue_per_job_s": (enqueued - start) / n, "wall_s": end - start}


def bench_nodejobs(n: int, work: str, cli_sample: int = 20) -> dict:
    db_path = os.path.join(work, "db")
    with Jobs(db_path, reaper=False) as jobs:
        jobs.set_limit("drain", 2)
        start = time.perf_counter()
        for i in range(n):
            jobs.run(["true"], f"t{i}", group="drain")
        enqueued = time.perf_counter()
    logs = os.path.join(db_path, "logs")
    while len([f for f in os.listdir(logs) if f.endswith(".exit")]) < n:  # each supervisor writes one
        time.sleep(0.02)
    end = time.perf_counter()
    with Jobs(db_path, reaper=False) as jobs:  # an API call folds the last ends
        failed = sum(r.status != "finished" for r in jobs.list_status().values())
    cli_db = os.path.join(work, "cli-db")
    command = [sys.executable, "-m", "nodejobs", "--db", cli_db, "run", "--group", "drain", "--id"]
    cli_start = time.perf_counter()
    for i in range(cli_sample):
        subprocess.run([*command, f"c{i}", "--", "true"], check=True, stdout=subprocess.DEVNULL)
    cli = (time.perf_counter() - cli_start) / cli_sample
    return {"enqueue_per_job_s": (enqueued - start) / n, "wall_s": end - start, "not_finished": failed,
            "cli_enqueue_per_job_s": cli}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="nodejobs-queue-bench-")
    os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    try:
        tsp = bench_tsp(args.n, work)
        ours = bench_nodejobs(args.n, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "n": args.n,
        "machine": f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GB, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"Linux {platform.release()}, load {os.getloadavg()[0]:.1f}",
        "task_spooler": tsp,
        "nodejobs": ours,
        "wall_ratio_nodejobs_over_tsp": ours["wall_s"] / tsp["wall_s"],
    }
    with open(os.path.join(BENCH, "queue_results.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
