"""Run the suite cheapest first: unit tests, reliability, kernels, the Slurm cluster, notebooks, then the
browser; and fail it if a process of a test's job outlives it."""

import os
import time

import pytest

_ORDER = ("reliability", "upstream", "kernel", "slurm")


def _rank(item) -> int:
    if item.get_closest_marker("browser"):
        return 6
    if str(item.fspath).endswith(".ipynb"):
        return 5
    for rank, marker in enumerate(_ORDER, start=1):
        if item.get_closest_marker(marker):
            return rank
    return 0


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_rank)


# -- no process of a test outlives the suite --------------------------------------------------------

_MARKS = (b"NODEJOBS_RUN_ID=", b"NODEJOBS_JOB_ID=")  # every process of a job carries one of these
_LEFTOVER_DEADLINE = 30.0  # seconds a job's processes may take to end after the last test


def _marked_processes() -> dict[tuple[int, bytes], str]:
    """Every process on this machine (local or Slurm jobs alike) carrying a job's marks: (pid, start
    ticks) -> what it runs and which job it is of."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                start = f.read().rsplit(b")", 1)[1].split()[19]
            with open(f"/proc/{name}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").strip()[:120]
        except OSError:  # gone, or not ours to read
            continue
        marks = [v for v in environ if v.startswith(_MARKS)]
        if marks:
            what = f"{command.decode(errors='replace')} ({b' '.join(marks).decode()})"
            found[(int(name), start)] = f"pid {name}: {what}"
    return found


@pytest.fixture(scope="session", autouse=True)
def no_job_process_outlives_the_suite():
    """Fails the session if a process of a test's job (its run mark or job id in its environment) is
    still alive after every test ended, locally or on the Slurm test cluster (the same machine)."""
    before = set(_marked_processes())  # the user's own jobs, or another run's: not ours to judge
    yield
    deadline = time.monotonic() + _LEFTOVER_DEADLINE
    while True:
        left = {k: v for k, v in _marked_processes().items() if k not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # polling the machine's process table with a deadline
    assert not left, "processes of the tests' jobs outlived the suite:\n" + "\n".join(sorted(left.values()))
