"""A real kernel submits to Slurm and is SIGKILLed; a new kernel sees how the jobs truly ended."""

from __future__ import annotations

import os
import signal

import pytest
from polling import wait_until
from slurm_cluster import gate, require_cluster
from test_kernel import Kernel, preloaded_ipython_dir

from nodejobs import Jobs

pytestmark = [pytest.mark.slurm, pytest.mark.kernel]
LONG = 90


@pytest.fixture
def kernels(tmp_path):
    require_cluster()
    started = []

    def start(ipython_dir):
        started.append(Kernel(tmp_path, ipython_dir))
        return started[-1]

    yield start
    for kernel in started:
        kernel.shutdown()


def test_jobs_submitted_to_slurm_by_a_killed_kernel_are_found_ended_by_the_next(kernels, db_path, tmp_path):
    go = tmp_path / "go"
    first = kernels(tmp_path / "ipython1")
    started = first.run(
        f"%load_ext nodejobs_magics\n%config JobMagics.db_path = {db_path!r}\n"
        '%config JobMagics.backend = "slurm"\n'
        f"%job run --id survivor -- echo before; {gate(go)}; echo after; exit 7\n"
        "%job run --id child --after survivor -- echo never"
    )
    assert "survivor pending in slurm" in started["stdout"], started
    observer = Jobs(db_path, reaper=False)
    try:
        wait_until(lambda: observer.job_logs("survivor")[0] == "before\n", LONG, interval=0.1,
                   message="the job's first line")  # fmt: skip
        os.kill(first.pid(), signal.SIGKILL)
        wait_until(lambda: not first.manager.is_alive(), message="the kernel to die")
        go.touch()  # the job ends while no kernel runs
        wait_until(lambda: os.path.exists(observer.log_path("survivor").replace("_out.txt", ".exit")), LONG,
                   interval=0.1, message="its exit file")  # fmt: skip
    finally:
        observer.close()
    second = kernels(preloaded_ipython_dir(tmp_path / "ipython2", db_path))
    found = second.run(
        "r = %job wait survivor child --timeout 90\n"
        "print([(i, x.status, x.exit_code) for i, x in r.items()])\n%job logs survivor",
        timeout=LONG + 30,
    )
    assert found["stdout"].endswith(
        "[('survivor', 'failed', 7), ('child', 'dependency_failed', None)]\nbefore\nafter\n"
    ), found
