"""The CLI and the magics end to end once more, with the Slurm backend: run, list (a DataFrame), logs,
follow, wait, stop, rerun, a sweep through queued -> pending -> running -> finished/failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from polling import wait_until
from slurm_cluster import gate, require_cluster
from traitlets.config import Config

pytestmark = pytest.mark.slurm
LONG = 90


@pytest.fixture
def nodejobs(db_path):
    require_cluster()
    env = {**os.environ, "NODEJOBS_HOME": db_path, "NODEJOBS_BACKEND": "slurm"}

    def run(*args, timeout=LONG):
        return subprocess.run([sys.executable, "-m", "nodejobs", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    run.env = env
    yield run
    listed = json.loads(run("ls", "--json").stdout or "{}")
    active = [i for i, r in listed.items() if r["status"] in ("queued", "starting", "pending", "running")]
    if active:
        run("stop", "--grace", "0.2", *active)


def test_the_cli_on_slurm(nodejobs, tmp_path):
    go = tmp_path / "go"
    started = nodejobs("run", "--id", "talk", "--cpus", "1", "--", f"echo first; {gate(go)}; echo second")
    assert started.returncode == 0 and started.stdout.startswith("talk pending in slurm"), started.stderr
    wait_until(lambda: nodejobs("logs", "talk").stdout == "first\n", LONG, interval=0.2, message="its output")
    follow = subprocess.Popen([sys.executable, "-m", "nodejobs", "logs", "-f", "talk"], env=nodejobs.env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert follow.stdout.readline() == "first\n"
        go.touch()
        rest, _ = follow.communicate(timeout=LONG)  # ends by itself with the job
    finally:
        follow.kill()
    assert rest == "second\n"
    assert nodejobs("wait", "talk").stdout.startswith("talk finished (exit 0)")
    failing = nodejobs("run", "--id", "bad", "--", "exit 4")
    assert failing.returncode == 0
    waited = nodejobs("wait", "bad")
    assert waited.returncode == 4 and waited.stdout.startswith("bad failed (exit 4)")
    listed = json.loads(nodejobs("ls", "--json").stdout)
    assert {i: (r["status"], r["backend"]) for i, r in listed.items()} == {
        "talk": ("finished", "slurm"), "bad": ("failed", "slurm")}  # fmt: skip
    nodejobs("run", "--id", "long", "--", "sleep 300")
    wait_until(lambda: json.loads(nodejobs("status", "long", "--json").stdout)["status"] == "running", LONG,
               interval=0.2, message="long to run")  # fmt: skip
    stopped = nodejobs("stop", "long", "--grace", "5")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    again = nodejobs("rerun", "bad")
    assert again.returncode == 0 and nodejobs("wait", "bad").returncode == 4
    refused = nodejobs("run", "--partition", "nope", "--", "true")
    assert refused.returncode != 0 and "invalid partition" in refused.stdout + refused.stderr


def shell():
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    return InteractiveShell.instance(config=config)


@pytest.fixture
def ip(db_path):
    require_cluster()
    sh = shell()
    sh.run_line_magic("load_ext", "nodejobs_magics")
    sh.run_line_magic("config", 'JobMagics.backend = "slurm"')
    sh.run_line_magic("job", f"db {db_path}")
    yield sh
    magics = sh.magics_manager.registry["JobMagics"]
    for record in magics.jobs.list_status().values():
        if record.is_active:
            magics.jobs.stop(record.self_id, grace=0.2)
    sh.run_line_magic("unload_ext", "nodejobs_magics")
    sh.config.pop("JobMagics", None)


def job(ip, line):
    return ip.run_line_magic("job", line)


def test_the_magics_on_slurm(ip, tmp_path):
    go = tmp_path / "go"
    job(ip, f"run --id one -- echo hello; {gate(go)}")
    jobs = ip.magics_manager.registry["JobMagics"].jobs
    assert jobs.backend == "slurm" and jobs.get_status("one").backend == "slurm"
    job(ip, "sweep --limit 1 --group g -p n=0,3 -- exit {n}")
    frame = job(ip, "ls")
    assert isinstance(frame, pd.DataFrame) and set(frame.index) == {"one", "exit-n0", "exit-n3"}
    assert frame.loc["exit-n3", "status"] == "queued"  # our queue holds it: group g runs one at a time
    seen = {frame.loc["exit-n0", "status"]}
    wait_until(lambda: seen.add(jobs.get_status("exit-n0").status) or "finished" in seen, LONG, interval=0.05,
               message="exit-n0 to end")  # fmt: skip
    assert {"pending", "finished"} <= seen
    ended = job(ip, "wait exit-n0 exit-n3 --timeout 90")
    assert {i: (r.status, r.exit_code) for i, r in ended.items()} == {
        "exit-n0": ("finished", 0), "exit-n3": ("failed", 3)}  # fmt: skip
    wait_until(lambda: jobs.tail("one") == "hello\n", LONG, interval=0.2, message="one's output")
    job(ip, "stop one")
    assert (jobs.get_status("one").status, jobs.get_status("one").exit_code) == ("stopped", 143)
    job(ip, "rerun exit-n3")
    assert job(ip, "wait exit-n3 --timeout 90").exit_code == 3
