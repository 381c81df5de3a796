"""Faults: the launcher or the supervisor is killed, the log file vanishes, the machine "reboots".

In every case the next query must give an honest state: terminal with a reason, or "running" only while
a process of the job really runs; and other jobs are untouched.
"""

import os
import random
import shlex
import signal
import subprocess

import pytest
from reliability_support import (
    PY,
    figure,
    kill_quietly,
    pid_alive,
    processes_with_env,
    start_ticks,
    stop_all,
    wait_until,
)

from nodejobs import Jobs
from nodejobs.processes import LOST_REASON

pytestmark = pytest.mark.reliability

RANDOM_KILLS = 12
FAULTS_SURVIVED: dict[str, int] = {}

KILLED_LAUNCHER = """
import os, signal, sys
from nodejobs import Jobs
from nodejobs.store import db as jobdb
from nodejobs.backends.local import backend as local
db, point, prefix, ready = sys.argv[1:5]

def die(*_):
    os.kill(os.getpid(), signal.SIGKILL)

def after(cls, name):
    real = getattr(cls, name)
    def patched(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        die()
        return result
    setattr(cls, name, patched)

if point == "after-claim":            # the record says starting, nothing was launched
    after(jobdb.JobDB, "claim")
elif point == "after-launch":         # the supervisor exists, the database does not know it
    after(local.LocalBackend, "submit")
elif point == "after-record":         # the database knows the processes, status still starting
    after(jobdb.JobDB, "update_run")
jobs = Jobs(db)
open(ready, "w").close()
n = 0
while True:                           # point == "random": killed from outside at a random moment
    n += 1
    jobs.run(["sh", "-c", "echo started; exec sleep 60"], f"{prefix}{n}")
"""


def job_processes(prefix: str) -> dict[int, str]:
    """Live processes started for jobs whose id starts with ``prefix`` (they carry NODEJOBS_JOB_ID)."""
    return processes_with_env("NODEJOBS_JOB_ID", prefix)


def gone(prefix: str) -> None:
    """Wait until no process of these jobs is left: a stopped job's supervisor ends just after its
    record does (it writes its exit file, then ends the job's leftovers)."""
    wait_until(lambda: not job_processes(prefix), 15, message=f"the processes of {prefix}* to end")


def honest(jobs: Jobs, prefix: str) -> bool:
    """Every record is terminal with a reason or exit code, or active with its processes alive, and every
    live process of these jobs belongs to an active record that names it."""
    records = {i: r for i, r in jobs.list_status().items() if i.startswith(prefix)}
    tracked = set()
    for record in records.values():
        if record.is_active:
            if record.status != "running" or not pid_alive(record.last_pid):
                return False
            tracked |= {record.supervisor_pid, record.last_pid}
        elif record.reason is None and record.exit_code is None:
            return False
    return set(job_processes(prefix)) <= tracked


def launch_and_kill(db: str, tmp_path, point: str, prefix: str, delay: float = 0.0) -> None:
    ready = tmp_path / f"{prefix}ready"
    proc = subprocess.Popen(
        [PY, "-c", KILLED_LAUNCHER, db, point, prefix, str(ready)], stderr=subprocess.PIPE
    )
    try:
        if point == "random":
            wait_until(ready.exists, 30, message="the launcher to open the database")
            _sleep_on_pidfd(proc.pid, delay)
            proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
        wait_until(lambda: honest_processes(db, prefix), 15, message="job processes to be tracked or gone")
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def _no_strays():
    """Whatever happens, no process of a killed launcher's jobs outlives the test."""
    yield
    for pid in job_processes("kill-"):
        kill_quietly(pid)


def honest_processes(db: str, prefix: str) -> bool:
    """No process of these jobs runs unless an active record tracks it (checked read-only)."""
    running = job_processes(prefix)
    if not running:
        return True
    with Jobs(db, reaper=False) as jobs:
        return honest(jobs, prefix)


def _sleep_on_pidfd(pid: int, seconds: float) -> None:
    """Let ``pid`` run for ``seconds`` (returns early if it exits): a random kill moment, not a sync."""
    import select

    fd = os.pidfd_open(pid)
    try:
        select.select([fd], [], [], seconds)
    finally:
        os.close(fd)


@pytest.mark.parametrize("point", ["after-claim", "after-launch", "after-record"])
def test_launcher_killed_at_each_step_of_run_leaves_an_honest_record(tmp_path, point):
    db = str(tmp_path / "db")
    prefix = f"kill-{point}-"
    launch_and_kill(db, tmp_path, point, prefix)
    with Jobs(db) as jobs:
        try:
            wait_until(lambda: honest(jobs, prefix), 15, message=f"an honest record after a kill {point}")
            record = jobs.get_status(f"{prefix}1")
            assert record is not None, "the record of a job being started was lost"
            if record.is_active:  # it did start: it must really run, and stop must end it
                assert pid_alive(record.last_pid)
                assert jobs.stop(record.self_id, grace=1).status == "stopped"
            else:
                assert record.status == "failed_start" and record.reason, dict(record)
                gone(prefix)
            again = jobs.run(["true"], f"{prefix}1")  # the id is free again
            assert jobs.wait(again.self_id, timeout=10).status == "finished"
        finally:
            stop_all(jobs)
    FAULTS_SURVIVED[f"launcher killed {point}"] = 1


def test_launcher_killed_at_random_moments_never_leaves_a_job_starting_or_untracked(tmp_path, capsys):
    db = str(tmp_path / "db")
    rng = random.Random(6)
    outcomes = {"terminal": 0, "running": 0}
    with Jobs(db) as jobs:
        try:
            for round_ in range(RANDOM_KILLS):
                prefix = f"kill-random{round_}-"
                launch_and_kill(db, tmp_path, "random", prefix, delay=rng.uniform(0.0, 0.25))
                wait_until(lambda p=prefix: honest(jobs, p), 15, message=f"honest records in round {round_}")
                for record in jobs.list_status().values():
                    if record.self_id.startswith(prefix):
                        outcomes["running" if record.is_active else "terminal"] += 1
                stop_all(jobs)
                gone(prefix)
        finally:
            stop_all(jobs)
    FAULTS_SURVIVED["launcher killed at random"] = RANDOM_KILLS
    figure(
        "launcher SIGKILLed during run()",
        f"{RANDOM_KILLS} random kills: {sum(outcomes.values())} records, {outcomes['running']} running "
        f"(tracked, then stopped), {outcomes['terminal']} terminal; 0 left starting, 0 untracked processes",
        capsys,
    )


def gated(gate, then: str) -> str:
    return f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.02; done; {then}"


def test_supervisor_killed_the_job_keeps_running_then_ends_failed_with_a_reason(jobs, tmp_path):
    gate = tmp_path / "gate"
    other = jobs.run(gated(tmp_path / "never", "true"), "bystander")
    victim = jobs.run(gated(gate, "echo done"), "orphaned")
    os.kill(victim.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(victim.supervisor_pid), message="the supervisor to die")
    record = jobs.get_status("orphaned")
    assert record.status == "running" and pid_alive(record.last_pid)  # true: the payload still runs
    gate.touch()
    wait_until(lambda: not pid_alive(victim.last_pid), message="the payload to end")
    record = jobs.get_status("orphaned")
    assert record.status == "failed" and record.reason == LOST_REASON and record.ended_at
    assert jobs.job_logs("orphaned")[0] == "done\n"
    untouched = jobs.get_status("bystander")
    assert (untouched.status, untouched.last_pid) == ("running", other.last_pid) and pid_alive(other.last_pid)
    FAULTS_SURVIVED["supervisor SIGKILLed"] = 1


def test_supervisor_killed_then_stop_ends_the_orphaned_payload(jobs):
    victim = jobs.run(["sleep", "60"], "orphan-stop")
    os.kill(victim.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(victim.supervisor_pid), message="the supervisor to die")
    record = jobs.stop("orphan-stop", grace=1)
    assert record.status == "stopped" and record.reason == LOST_REASON
    assert not pid_alive(victim.last_pid)
    FAULTS_SURVIVED["supervisor SIGKILLed, then stop"] = 1


def test_log_file_deleted_while_the_job_runs(jobs, tmp_path):
    gate = tmp_path / "gate"
    jobs.run(
        gated(gate, "echo after; echo err-after >&2; exit 0"),
        "unlogged",
    )
    out_path, err_path = jobs.jobdb.log_paths(jobs.get_status("unlogged"))
    os.remove(out_path)
    os.remove(err_path)
    assert jobs.tail("unlogged", 5) == "" and jobs.job_logs("unlogged") == ("", "")
    follower = jobs.follow("unlogged")
    gate.touch()
    assert list(follower) == []  # ends with the job; the text went to the deleted file
    record = jobs.wait("unlogged", timeout=10)
    assert (record.status, record.exit_code) == ("finished", 0)
    rerun = jobs.rerun("unlogged")  # the next run gets fresh files
    assert jobs.wait(rerun.self_id, timeout=10).status == "finished"
    assert jobs.job_logs("unlogged") == ("after\n", "err-after\n")
    FAULTS_SURVIVED["log file deleted"] = 1


def test_log_directory_deleted_while_the_job_runs_ends_terminal(jobs, tmp_path):
    gate = tmp_path / "gate"
    jobs.run(gated(gate, "exit 0"), "no-logdir")
    subprocess.run(["rm", "-rf", jobs.jobdb.logdir], check=True)
    gate.touch()
    record = jobs.wait("no-logdir", timeout=10)
    assert not record.is_active and (record.exit_code == 0 or record.reason), dict(record)
    again = jobs.run("echo back", "no-logdir")  # the directory comes back for the next job
    assert jobs.wait(again.self_id, timeout=10).status == "finished"
    assert jobs.job_logs("no-logdir")[0] == "back\n"
    FAULTS_SURVIVED["log directory deleted"] = 1


def test_machine_rebooted_records_end_with_a_reason_and_other_jobs_are_untouched(jobs, tmp_path, capsys):
    live = jobs.run(["sleep", "60"], "survivor")
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = os.getpid()
    base = dict(command="sleep 1000", cwd=str(tmp_path), started_at=1_700_000_000.0)
    stale = {
        # an earlier boot: even a pid alive now (this test's own) is not the job
        "old-boot-running": dict(
            status="running",
            boot_id="another-boot",
            supervisor_pid=me,
            supervisor_start=start_ticks(me),
            last_pid=me,
            pid_start=start_ticks(me),
        ),
        "old-boot-stopping": dict(
            status="stopping",
            boot_id="another-boot",
            supervisor_pid=me,
            supervisor_start=1,
            last_pid=me,
            pid_start=1,
        ),
        "old-boot-starting": dict(status="starting", boot_id="another-boot"),
        # this boot, but the processes are gone
        "dead-pids": dict(
            status="running",
            boot_id=live.boot_id,
            supervisor_pid=gone.pid,
            supervisor_start=1,
            last_pid=gone.pid,
            pid_start=1,
        ),
    }
    for job_id, fields in stale.items():
        jobs.jobdb.update_status({"self_id": job_id, **base, **fields})
    listing = jobs.list_status()
    for job_id in stale:
        record = listing[job_id]
        assert not record.is_active and record.reason and record.ended_at, dict(record)
    assert listing["old-boot-stopping"].status == "stopped"
    assert listing["old-boot-starting"].status == "failed_start"
    assert listing["survivor"].status == "running" and listing["survivor"].last_pid == live.last_pid
    assert pid_alive(live.last_pid) and pid_alive(me)
    for job_id in stale:  # stop is harmless, and the ids can be used again
        assert not jobs.stop(job_id).is_active
        assert jobs.wait(jobs.run(["true"], job_id).self_id, timeout=10).status == "finished"
    assert jobs.get_status("survivor").status == "running" and pid_alive(live.last_pid)
    FAULTS_SURVIVED["machine rebooted / processes gone"] = len(stale)
    figure(
        "faults",
        f"{sum(FAULTS_SURVIVED.values())} faults survived with an honest terminal state: "
        + ", ".join(f"{k} x{v}" for k, v in FAULTS_SURVIVED.items()),
        capsys,
    )
