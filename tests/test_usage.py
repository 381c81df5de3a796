"""What jobs cost, with real processes: live CPU and memory of the whole tree, recorded CPU time and peak.

Every job synchronises through files (never sleeps): the tests poll with deadlines, and no assertion
depends on how fast the machine is (CPU-bound jobs burn a fixed amount of CPU time, not of wall time).
"""

import os
import signal
import subprocess
import sys

import pandas as pd
from polling import wait_until

from nodejobs import Jobs
from nodejobs.backends.base import Backend

MB = 2**20
HOLD = "import os, time\nwhile not os.path.exists({gate!r}): time.sleep(0.05)\n"
ALLOCATE = "b = bytearray(200 * 2**20)\nb[:: 4096] = b'x' * len(b[:: 4096])\n"  # touched: resident
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}: pass\n"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_job_holding_200_mb_shows_it_live_and_records_its_peak(jobs, tmp_path):
    gate = str(tmp_path / "go")
    jobs.run(python(ALLOCATE + "open({!r}, 'w').close()\n".format(str(tmp_path / "ready")) +
                    HOLD.format(gate=gate)), "big")  # fmt: skip
    wait_until(lambda: (tmp_path / "ready").exists(), 30, message="the allocation")
    used = wait_until(lambda: jobs.usage().get("big"), 10, message="a usage sample")
    assert used.rss >= 200 * MB and used.status == "running" and used.threads >= 1
    frame = jobs.usage().to_dataframe()
    assert frame.loc["big", "rss"] >= 200 * MB and str(frame["rss"].dtype) == "Int64"
    open(gate, "w").close()
    record = jobs.wait("big", 30)
    assert record.status == "finished" and record.max_rss >= 200 * MB  # the peak seen while it ran
    df = jobs.list_status().to_dataframe()
    assert str(df["max_rss"].dtype) == "Int64" and df.loc["big", "max_rss"] >= 200 * MB


def test_cpu_time_is_recorded_even_when_the_launcher_was_killed(db_path, tmp_path):
    gate = str(tmp_path / "go")
    code = HOLD.format(gate=gate) + BURN.format(seconds=1.0)
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom nodejobs import Jobs\n"
         f"Jobs({db_path!r}).run({python(code)!r}, 'burn')\nprint('started', flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    try:
        assert launcher.stdout.readline() == "started\n"
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    open(gate, "w").close()  # the job burns its CPU only now, with nobody of ours alive to watch
    with Jobs(db_path) as fresh:  # a new process's view: it folds the end from the exit file
        record = fresh.wait("burn", 60)
    assert record.status == "finished"
    assert 0.8 <= record.cpu_time <= 1.5, record.cpu_time


def test_a_job_that_forks_four_children_counts_the_whole_tree(jobs, tmp_path):
    gate = str(tmp_path / "go")
    child = ALLOCATE + f"open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w').close()\n"
    child = "import os\n" + child + HOLD.format(gate=gate) + BURN.format(seconds=0.25)
    parent = (
        "import subprocess, sys\n"
        f"children = [subprocess.Popen([sys.executable, '-c', {child!r}]) for _ in range(4)]\n"
        "sys.exit(max(c.wait() for c in children))\n"
    )
    jobs.run(python(parent), "tree")
    wait_until(lambda: len([p for p in os.listdir(tmp_path) if p.isdigit()]) == 4, 60, message="4 children")
    used = wait_until(lambda: jobs.usage().get("tree"), 10, message="a usage sample")
    assert used.processes == 5  # the parent and its four children
    assert used.rss >= 4 * 200 * MB
    open(gate, "w").close()
    record = jobs.wait("tree", 60)
    assert record.status == "finished"
    assert record.max_rss >= 4 * 200 * MB
    assert record.cpu_time >= 4 * 0.25, record.cpu_time  # every child's burn counted (and their starts)


def test_usage_of_no_running_job_is_an_empty_frame_with_the_columns(jobs):
    jobs.run(["true"], "quick")
    jobs.wait("quick", 10)
    frame = jobs.usage().to_dataframe()
    assert len(frame) == 0
    assert {str(frame[c].dtype) for c in ("rss", "threads", "max_rss")} == {"Int64"}
    assert isinstance(frame["elapsed"].dtype, type(pd.Series([], dtype="timedelta64[ns]").dtype))
    assert frame["cpu_percent"].dtype == "float64"


def test_a_backend_without_resource_usage_reports_none():
    assert Backend.usage(object(), [{}, {}]) == [None, None]  # type: ignore[arg-type]
