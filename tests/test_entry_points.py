"""The entry points detached processes of an earlier nodejobs call, maybe days after an upgrade, keep
working: ``python -m nodejobs.dispatch`` (a supervisor's on-end step), ``python -m nodejobs.call`` (a
queued function job's program), ``python -m nodejobs.backends.leftovers`` (a supervisor's clean-up) and
``python -m nodejobs.cli`` (the command line)."""

import os
import signal
import subprocess
import sys

from polling import pid_alive, wait_until

from nodejobs import JobDB
from nodejobs.functions import callfile


def _old_dispatch_command(db_path: str) -> list[str]:
    return [sys.executable, "-m", "nodejobs.dispatch", db_path]


def test_a_supervisor_of_an_earlier_version_still_drains_the_queue(jobs, db_path, monkeypatch):
    monkeypatch.setattr(jobs.queue, "dispatch_command", lambda: _old_dispatch_command(db_path))
    jobs.lifecycle.on_end = jobs.queue.on_end_command()  # what a supervisor started before the upgrade runs
    jobs.set_limit("one", 1)
    jobs.run("sleep 0.3", "first", group="one")
    for name in ("second", "third"):
        assert jobs.run("true", name, group="one").status == "queued"
    db = JobDB(db_path)  # read the records only: a Jobs call would move the queue itself
    wait_until(lambda: db.get("third").status == "finished", timeout=60, message="the queue drained")
    assert db.get("second").status == "finished"


def _pickle_call_file(tmp_path) -> str:
    path = str(tmp_path / f"f{callfile.CALL_SUFFIX}")
    payload = callfile.pickle_call(divmod, (17, 5), {})
    callfile.write_file(path, callfile.CALL_MAGIC, {"name": "divmod(...)", "sys_path": sys.path}, payload)
    return path


def test_a_function_job_queued_by_an_earlier_version_still_runs(tmp_path):
    path = _pickle_call_file(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEJOBS_")}
    done = subprocess.run([sys.executable, "-m", "nodejobs.call", path], env=env, timeout=60)
    assert done.returncode == 0
    assert callfile.read_result(callfile.result_path(path)).value == (3, 2)


def test_the_leftovers_step_of_an_earlier_supervisor_still_ends_a_run(tmp_path):
    run_id = "old-run-1"
    env = {**os.environ, "NODEJOBS_RUN_ID": run_id}
    group = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"], env=env,
                             start_new_session=True)  # fmt: skip
    try:
        children = wait_until(lambda: _children(group.pid) if len(_children(group.pid)) == 2 else None,
                              message="two sleeps")  # fmt: skip
        old_step = [sys.executable, "-m", "nodejobs.backends.leftovers", str(group.pid), run_id, "0.5", "7"]
        done = subprocess.run(old_step, timeout=60)
        assert done.returncode == 7  # the job's exit code, passed through
        group.wait(30)
        wait_until(lambda: not any(pid_alive(pid) for pid in children), message="the leftovers ended")
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
            group.wait(30)


def test_the_command_line_under_its_earlier_module_name():
    done = subprocess.run([sys.executable, "-m", "nodejobs.cli", "--version"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("nodejobs ")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []
