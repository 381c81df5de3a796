"""The Slurm test cluster (``scripts/slurm_setup.sh``) as the Slurm tests need it: up, or a failure."""

from __future__ import annotations

import shutil
import subprocess

import pytest

SETUP = "scripts/slurm_setup.sh"


def require_cluster() -> None:
    """Fail the test (never skip) unless Slurm's controller answers and its node takes jobs."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.fail(f"Slurm's commands are not on PATH: run {SETUP} (as root) first")
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the Slurm test cluster does not answer: run {SETUP}")
    if "UP" not in ping.stdout:
        pytest.fail(f"Slurm's controller is down ({ping.stdout.strip() or ping.stderr.strip()}): run {SETUP}")
    states = set(state.stdout.split())
    if not states & {"idle", "mixed", "allocated", "completing"}:
        pytest.fail(f"the Slurm test node cannot take jobs (state {states or 'unknown'}): run {SETUP}")


def gate(path) -> str:
    """A shell command that waits until ``path`` exists: a job the test lets end when it wants."""
    return f"while [ ! -e {path} ]; do sleep 0.05; done"
