"""On Slurm, as locally, nothing of a run outlives its job: whatever Slurm's process tracking (the test
cluster's is ``proctrack/linuxproc``, which loses a process once its parent is gone), a cancel ends the
payload, its children and the processes that left its session, also when the job's supervisor was
SIGKILLed first; and the supervisor's own helpers (its watchdog's naps) end with it."""

from __future__ import annotations

import os
import signal

import pytest
from polling import wait_until

pytestmark = pytest.mark.slurm
LONG = 90
# A payload that forks, double-forks (its grandchild's parent is gone at once) and starts a new session.
ESCAPING = "sleep 300 & (sleep 300 &) ; setsid sleep 300 & echo up; wait"


def carriers(*marks: str) -> dict[int, str]:
    """pid -> command of every process whose environment holds one of ``marks`` (``NAME=value``)."""
    wanted = [m.encode() for m in marks]
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{name}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in environ for m in wanted):
            found[int(name)] = command
    return found


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


def sleeps_of(record) -> int:
    return len([c for c in carriers(marks_of(record)[0]).values() if c.startswith("sleep 300")])


def marks_of(record) -> tuple[str, str]:
    return f"NODEJOBS_RUN_ID={record.run_id}", f"NODEJOBS_JOB_ID={record.self_id}"


def test_a_cancel_ends_every_process_of_the_run_also_after_its_supervisor_was_sigkilled(sjobs):
    records = [sjobs.run(ESCAPING, name, cpus=1) for name in ("esc-plain", "esc-killed")]
    for record in records:
        wait_until(lambda r=record: sjobs.get_status(r.self_id).status == "running", LONG, 0.2, "it runs")
        wait_until(lambda r=record: sleeps_of(r) == 3, LONG, 0.1, "the payload's three sleeps")
    killed = records[1]
    payload = next(p for p, c in carriers(marks_of(killed)[0]).items() if c.startswith("/bin/sh -c"))
    os.kill(parent_of(payload), signal.SIGKILL)  # the supervisor: the payload's parent
    for record in records:
        sjobs.stop(record.self_id, grace=1.0)
    every_mark = [m for r in records for m in marks_of(r)]
    wait_until(lambda: not carriers(*every_mark), 30, 0.2, "no process of either run left")
    assert sjobs.get_status("esc-plain").status == "stopped"
    assert not sjobs.get_status("esc-killed").is_active


def test_a_job_that_ends_at_once_leaves_none_of_its_supervisors_helpers(sjobs):
    records = sjobs.map("exit {n}", [{"n": n} for n in range(4)], prefix="quick", cpus=1)
    sjobs.wait_all(list(records), LONG)
    every_mark = [m for r in records.values() for m in marks_of(r)]
    wait_until(lambda: not carriers(*every_mark), 30, 0.2, "no helper of the supervisors left")
