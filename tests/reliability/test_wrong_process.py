"""Never the wrong process: stop signals only processes proven to be the job's.

Every bystander here is a ``Canary``: an unrelated process that logs each signal it catches, so a
stray SIGTERM/SIGINT/SIGHUP is seen even though the canary survives it.
"""

import json
import os

import pytest
from reliability_support import Canary, figure, pid_alive, start_ticks, this_boot

pytestmark = pytest.mark.reliability

STOPS: dict[str, int] = {}


@pytest.fixture
def canaries(tmp_path):
    made = []

    def make(*args, env=None):
        canary = Canary(str(tmp_path), *args, env=env)
        made.append(canary)
        return canary

    yield make
    for canary in made:
        canary.close()


def stale_record(jobs, job_id, pid, *, status="running", start_delta=1, boot=None):
    """Write a record that names ``pid`` but with another start time (the pid was reused since)."""
    ticks = start_ticks(pid) - start_delta
    jobs.jobdb.update_status(
        {
            "self_id": job_id,
            "status": status,
            "command": "sleep 1000",
            "supervisor_pid": pid,
            "supervisor_start": ticks,
            "last_pid": pid,
            "pid_start": ticks,
            "boot_id": boot or this_boot(),
            "started_at": 1_700_000_000.0,
        }
    )


@pytest.mark.parametrize("status", ["running", "stopping", "starting"])
def test_a_stale_record_whose_pid_now_belongs_to_another_process(jobs, canaries, status):
    canary = canaries()
    stale_record(jobs, "stale", canary.pid, status=status)
    assert jobs.processes.find("stale") is None
    assert all(p.pid != canary.pid for p in jobs.processes.list())
    record = jobs.stop("stale", grace=0.5)
    assert not record.is_active and record.reason, dict(record)
    assert canary.alive() and canary.signals() == []
    STOPS["stale record (pid reused)"] = STOPS.get("stale record (pid reused)", 0) + 1


def test_a_stale_record_from_another_boot_naming_a_live_pid(jobs, canaries):
    canary = canaries()
    stale_record(jobs, "old-boot", canary.pid, start_delta=0, boot="00000000-another-boot")
    record = jobs.stop("old-boot", grace=0.5)
    assert not record.is_active and "restarted" in record.reason
    assert canary.alive() and canary.signals() == []
    STOPS["record from another boot"] = 1


def test_the_job_id_in_an_unrelated_command_line_and_environment(jobs, canaries, capsys):
    # Unrelated processes that mention the id everywhere a careless matcher would look.
    lookalikes = [
        canaries("train-1", "--job", "train-1", "nodejobs", "NODEJOBS_JOB_ID=train-1"),
        canaries("x", env={"NODEJOBS_JOB_ID": "train-1"}),
        canaries("nodejobs-supervisor", "/tmp/logs/train-1.exit", "sleep", "60"),
    ]
    real = jobs.run(["sleep", "60"], "train-1")
    assert jobs.processes.find("train-1").pid == real.last_pid
    record = jobs.stop("train-1", grace=1)
    assert record.status == "stopped" and not pid_alive(real.last_pid)
    for canary in lookalikes:
        assert canary.alive() and canary.signals() == [], canary.signals()
    # An unknown id and an ended job: stop touches nothing at all.
    assert jobs.stop("train-2") is None
    assert jobs.stop("train-1").status == "stopped"
    for canary in lookalikes:
        assert canary.alive() and canary.signals() == []
    STOPS["id in unrelated command lines/env"] = len(lookalikes)


def test_a_reused_payload_pid_with_a_live_supervisor_is_not_signalled(jobs, canaries, capsys):
    """The supervisor is the job's, but the recorded payload pid now names a stranger."""
    canary = canaries()
    real = jobs.run(["sleep", "60"], "mixed")
    ticks = start_ticks(canary.pid) - 1
    handle = {**json.loads(real.handle), "pid": [canary.pid, ticks]}
    changed = {"handle": json.dumps(handle), "last_pid": canary.pid, "pid_start": ticks}
    assert jobs.jobdb.update_run("mixed", real.run_id, "running", changed)
    record = jobs.stop("mixed", grace=1)
    assert record.status == "stopped" and not pid_alive(real.last_pid)
    assert canary.alive() and canary.signals() == []
    assert os.getpgid(canary.pid) == canary.pid  # its own group, never the job's
    STOPS["payload pid reused"] = 1
    figure(
        "never the wrong process",
        f"{sum(STOPS.values())} bystander processes, {len(STOPS)} situations "
        f"({', '.join(STOPS)}): 0 signals received",
        capsys,
    )
