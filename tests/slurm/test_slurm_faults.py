"""Faults on Slurm: a job Slurm has forgotten, with and without a record of its end; the controller
down while jobs run and are submitted, then restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import pytest
from polling import wait_until
from slurm_cluster import SETUP, gate, require_cluster

from nodejobs.backends.base import ENDED, VANISHED, JobSpec
from nodejobs.backends.slurm.backend import FORGOTTEN_REASON, SlurmBackend
from nodejobs.errors import BackendError

pytestmark = pytest.mark.slurm
LONG = 90
CTLD_PID = "/run/slurm/slurmctld.pid"


def shim(directory, name: str, script: str) -> None:
    """Put a stand-in for Slurm's command ``name`` first on PATH (the backend looks it up per call)."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


@pytest.fixture
def ended_without_exit_file(tmp_path):
    """A Slurm job that ended and whose exit file is gone (as if its node never wrote it)."""
    require_cluster()
    backend = SlurmBackend(min_interval=0.0)
    run_id = uuid.uuid4().hex
    base = str(tmp_path / "lost")
    files = {"out_path": base + "_out.txt", "err_path": base + "_errors.txt", "exit_path": base + ".exit"}
    spec = JobSpec(job_id="lost", run_id=run_id, argv=["true"], env={**os.environ}, cwd=str(tmp_path),
                   **files)
    handle = backend.submit(spec)
    backend.release(handle)
    wait_until(lambda: os.path.exists(spec.exit_path), LONG, interval=0.1, message="its exit file")
    squeue = ["squeue", "-h", "--states=all", "-j", handle["slurm"], "-o", "%T"]
    wait_until(lambda: "COMPLETED" in subprocess.run(squeue, capture_output=True, text=True).stdout, LONG,
               interval=0.2, message="Slurm to call it COMPLETED")  # fmt: skip
    os.remove(spec.exit_path)
    handle["at"] -= 5  # submitted well before the next squeue answer
    return backend, handle


def test_a_forgotten_job_is_found_in_slurms_completion_log(ended_without_exit_file, tmp_path, monkeypatch):
    backend, handle = ended_without_exit_file
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim(bin_dir, "squeue", "exit 0  # Slurm has purged every ended job")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    seen = backend.observe([handle])[0]
    assert (seen.state, seen.exit_code, seen.started) == (ENDED, 0, True)


def test_without_accounting_a_forgotten_jobs_end_is_unknown_never_guessed(ended_without_exit_file, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    backend, handle = ended_without_exit_file
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim(bin_dir, "squeue", "exit 0")
    shim(bin_dir, "sacct", "echo 'Slurm accounting storage is disabled' >&2; exit 1")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    seen = backend.observe([handle])[0]
    assert (seen.state, seen.reason) == (VANISHED, FORGOTTEN_REASON)


def stop_controller() -> None:
    with open(CTLD_PID) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: "DOWN" in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout,
               60, interval=0.2, message="slurmctld to stop")  # fmt: skip


def test_controller_down_then_restarted_while_jobs_run(sjobs, tmp_path):
    go = tmp_path / "go"
    sjobs.run(f"{gate(go)}; echo survived", "across")
    wait_until(lambda: sjobs.get_status("across").status == "running", LONG, message="it to run")
    stop_controller()
    try:
        with pytest.raises(BackendError, match="Slurm"):
            sjobs.run("true", "refused")
        record = sjobs.get_status("refused")
        assert record.status == "failed_start" and "Slurm" in record.reason
        go.touch()
        ended = sjobs.wait("across", LONG)  # its exit file tells, with no controller to ask
        assert (ended.status, ended.exit_code) == ("finished", 0)
    finally:
        subprocess.run(["bash", SETUP], check=True, capture_output=True, timeout=120)
    assert sjobs.job_logs("across")[0] == "survived\n"
    after = sjobs.wait(sjobs.run("echo back", "after-restart").self_id, LONG)
    assert (after.status, sjobs.job_logs("after-restart")[0]) == ("finished", "back\n")
