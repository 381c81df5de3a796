"""Finding a run's processes by its mark while they change under the search: exec and fork."""

import os
import subprocess
import uuid

import pytest

from conftest import pid_alive, wait_until
from nodejobs.backends.base import RUN_MARK
from nodejobs.backends.local.procs import close_all, end_all, find_members


def marked_process(tmp_path, script: str) -> tuple[str, subprocess.Popen]:
    """Start ``sh script`` in a session of its own carrying a fresh run mark; (run id, process)."""
    run_id = uuid.uuid4().hex
    path = tmp_path / "script.sh"
    path.write_text(script)
    env = {"PATH": os.environ["PATH"], RUN_MARK: run_id}
    popen = subprocess.Popen(["/bin/sh", str(path)], env=env, start_new_session=True)
    return run_id, popen


def marked_pids(run_id: str) -> list[int]:
    """Every live process whose environment carries ``run_id``'s mark (read straight from /proc)."""
    members = find_members(run_id)
    try:
        return sorted(m.pid for m in members)
    finally:
        close_all(members)


@pytest.fixture
def ended():
    """Kill the marked processes a test leaves, whatever happened to it."""
    runs: list[str] = []
    yield runs
    for run_id in runs:
        end_all([lambda run_id=run_id: find_members(run_id)], 0.1)


def test_a_process_in_the_middle_of_an_exec_is_still_found(tmp_path, ended):
    # The kernel shows an exec'ing process's environment as empty for a moment; a search that took
    # that moment for "unmarked" missed such a process in about one look of 25 here.
    run_id, popen = marked_process(tmp_path, 'exec /bin/sh "$0"\n')  # exec's itself, over and over
    ended.append(run_id)
    wait_until(lambda: marked_pids(run_id), message="the process to carry its mark")
    missed = sum(marked_pids(run_id) != [popen.pid] for _ in range(200))
    assert missed == 0
    popen.kill()
    popen.wait()


def test_end_all_looks_again_for_what_was_forked_while_it_signalled(tmp_path, ended):
    run_id, popen = marked_process(tmp_path, "while :; do sleep 100 & done\n")  # forks without pause
    ended.append(run_id)
    wait_until(lambda: len(marked_pids(run_id)) > 20, message="the process to have forked children")
    assert end_all([lambda: find_members(run_id)], grace=1.0) == [True]
    assert marked_pids(run_id) == []
    popen.wait()
    assert not pid_alive(popen.pid)
