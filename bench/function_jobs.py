"""``python bench/function_jobs.py [-n 20]``: submit -> result of a function returning None, as a nodejobs
function job, against a nodejobs shell job (``true``: run -> wait), ``concurrent.futures``'
``ProcessPoolExecutor`` (a warm pool, and a new pool per call) and, if it is installed (``pip install
--target bench/.work/site submitit``), submitit's ``LocalExecutor``; side by side in one run, each
call one after the other (nothing else running). Writes ``bench/function_results.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)
SITE = os.path.join(BENCH, ".work", "site")  # submitit, if installed there; its jobs import it too
sys.path.append(SITE)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), SITE) if p)

from nodejobs import Jobs  # noqa: E402

SHELL = "nodejobs shell job `true` (run → wait)"
FUNCTION = "nodejobs function job (submit → result)"


def noop() -> None:
    return None


def timed(n: int, once: Callable[[], object]) -> list[float]:
    """Seconds of each of ``n`` calls of ``once`` (after one unmeasured warm-up call)."""
    once()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return times


def bench(n: int, work: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with Jobs(os.path.join(work, "db")) as jobs:
        out[SHELL] = timed(n, lambda: jobs.wait(jobs.run(["true"]).self_id))
        out[FUNCTION] = timed(n, lambda: jobs.result(jobs.submit(noop).self_id))
        with jobs.executor() as executor:
            out["nodejobs executor (submit → Future.result)"] = timed(
                n, lambda: executor.submit(noop).result()
            )
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        out["ProcessPoolExecutor, warm pool"] = timed(n, lambda: pool.submit(noop).result())

    def fresh_pool() -> None:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
            pool.submit(noop).result()

    out["ProcessPoolExecutor, a new pool per call"] = timed(n, fresh_pool)
    try:
        import submitit
    except ImportError:
        logging.warning("submitit is not installed: pip install --target bench/.work/site submitit")
    else:
        local = submitit.LocalExecutor(folder=os.path.join(work, "submitit"))
        out[f"submitit {submitit.__version__} LocalExecutor"] = timed(n, lambda: local.submit(noop).result())
    return out


def report(results: dict[str, list[float]], n: int) -> str:
    function = statistics.median(results[FUNCTION])
    lines = [
        "# Function jobs: submit → result of a function returning None",
        "",
        f"`python bench/function_jobs.py -n {n}` — {datetime.now(timezone.utc):%Y-%m-%d}, {platform.node()}: "
        f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}. "
        f"Each row: {n} calls one after the other (after one warm-up call); times in ms.",
        "",
        "| what | median | mean | min | max | nodejobs function job ÷ this |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, times in results.items():
        median = statistics.median(times)
        lines.append(
            f"| {name} | {median * 1e3:.1f} | {statistics.mean(times) * 1e3:.1f} | {min(times) * 1e3:.1f} | "
            f"{max(times) * 1e3:.1f} | {function / median:.1f}× |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="calls per row (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nodejobs-bench-") as work:
        os.chdir(work)
        text = report(bench(args.n, work), args.n)
    with open(os.path.join(BENCH, "function_results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
