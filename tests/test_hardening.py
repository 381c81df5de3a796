"""What a new user and a hostile user tripped on: leftover processes, silent losses, rough edges."""

import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from polling import pid_alive, wait_until

from nodejobs import Jobs, MissingEnvError

PY = sys.executable


def pids_in(text: str) -> list[int]:
    return [int(word) for word in text.split() if word.isdigit()]


def first_pids(jobs, job_id: str, n: int) -> list[int]:
    return wait_until(lambda: len(p := pids_in(jobs.job_logs(job_id)[0])) >= n and p, message="the pids")


def test_a_child_left_running_when_the_job_ends_is_ended(jobs):
    jobs.run("sleep 101 & echo $!; echo started", "left")
    assert jobs.wait("left", timeout=30).status == "finished"
    (child,) = first_pids(jobs, "left", 1)
    wait_until(lambda: not pid_alive(child), message="the leftover child to be ended")


def test_killing_the_jobs_program_ends_what_it_started_too(jobs):
    record = jobs.run("sleep 100 & echo $!; wait", "v")
    (child,) = first_pids(jobs, "v", 1)
    os.kill(record.last_pid, signal.SIGKILL)  # as the OOM killer would
    final = jobs.wait("v", timeout=30)
    assert (final.status, final.exit_code) == ("failed", 137)
    wait_until(lambda: not pid_alive(child), message="the data-loader-like child to be ended")


def test_leftovers_are_kept_on_request_and_stop_of_the_ended_job_still_reaches_them(jobs):
    jobs.run("sleep 100 & echo $!", "kept", keep_leftovers=True)
    assert jobs.wait("kept", timeout=30).status == "finished"
    (child,) = first_pids(jobs, "kept", 1)
    assert pid_alive(child)
    assert jobs.stop("kept", grace=1).status == "finished"  # the record stays as it ended
    wait_until(lambda: not pid_alive(child), message="stop to reach the leftover")


def test_a_double_forked_daemon_is_found_by_its_run_mark(jobs):
    jobs.run("(setsid sleep 1000 & echo $!); sleep 100", "daemon")
    (daemon,) = first_pids(jobs, "daemon", 1)
    wait_until(lambda: os.getsid(daemon) == daemon, message="the daemon to leave the job's session")
    assert jobs.stop("daemon", grace=1).status == "stopped"
    wait_until(lambda: not pid_alive(daemon), message="the daemon to be ended")
    jobs.run("(setsid sleep 1000 & echo $!); exit 0", "daemon-at-end")
    (daemon,) = first_pids(jobs, "daemon-at-end", 1)
    jobs.wait("daemon-at-end", timeout=30)
    wait_until(lambda: not pid_alive(daemon), message="end-of-job clean-up to end the daemon")


def test_a_process_with_another_runs_mark_is_never_signalled(jobs):
    stranger = subprocess.Popen(
        ["sleep", "60"], env={**os.environ, "NODEJOBS_RUN_ID": "not-this-run", "NODEJOBS_JOB_ID": "twin"}
    )
    try:
        jobs.run("sleep 100", "twin")
        jobs.stop("twin", grace=1)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("name", ["1X", "WITH SPACE", "ÜNICODE", "dash-name", ""])
def test_environment_names_follow_one_rule_and_nothing_is_written(jobs, name):
    with pytest.raises(ValueError, match="environment variable name"):
        jobs.run(["true"], "env", envs={name: "v"})
    assert jobs.get_status("env") is None


LAUNCHER_IGNORING_SIGNALS = textwrap.dedent(
    """
    import signal, sys
    from nodejobs import Jobs
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # as under nohup, or `cmd &` in a script
    with Jobs(sys.argv[1]) as jobs:
        jobs.run("grep SigIgn /proc/$$/status; kill -INT $$", "interrupted")
        print(jobs.wait("interrupted", timeout=30).exit_code)
    """
)


def test_a_jobs_signal_dispositions_do_not_depend_on_its_launcher(db_path, jobs):
    done = subprocess.run([PY, "-c", LAUNCHER_IGNORING_SIGNALS, db_path], capture_output=True, text=True)
    assert done.stdout.split() == ["130"], done.stderr
    ignored = int(jobs.job_logs("interrupted")[0].split()[1], 16)
    assert ignored & (1 << (signal.SIGINT - 1) | 1 << (signal.SIGHUP - 1) | 1 << (signal.SIGQUIT - 1)) == 0
    assert jobs.get_status("interrupted").status == "failed"


def test_a_tilde_in_the_database_path_is_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with Jobs("~/x") as jobs:
        assert jobs.db_path == str(tmp_path / "home" / "x")
    assert not (tmp_path / "~").exists()


def test_rerun_needs_the_environment_values_again_or_an_explicit_without(jobs):
    jobs.run('echo "token=$TOKEN"', "api", envs={"TOKEN": "s3cret"})
    jobs.wait("api", timeout=30)
    with pytest.raises(MissingEnvError, match="TOKEN"):
        jobs.rerun("api")
    jobs.rerun("api", envs={"TOKEN": "again"})
    jobs.wait("api", timeout=30)
    assert jobs.job_logs("api")[0] == "token=again\n"
    jobs.rerun("api", without_env=True)
    jobs.wait("api", timeout=30)
    assert jobs.job_logs("api")[0] == "token=\n"


@pytest.mark.parametrize("timeout", [math.inf, 30 * 24 * 3600.0, None])
def test_wait_takes_any_timeout_up_to_infinity(jobs, timeout):
    jobs.run("sleep 0.2", "short")
    assert jobs.wait("short", timeout=timeout).status == "finished"


def test_a_negative_timeout_is_an_error(jobs):
    jobs.run("sleep 0.1", "short")
    with pytest.raises(ValueError, match="timeout"):
        jobs.wait("short", timeout=-1)


def test_python_jobs_stream_their_output_unless_the_user_says_otherwise(jobs, tmp_path):
    jobs.run([PY, "-c", "import time; print('early'); time.sleep(60)"], "py")
    wait_until(lambda: jobs.job_logs("py")[0] == "early\n", message="the print to reach the log at once")
    assert jobs.get_status("py").status == "running"
    jobs.run(
        [PY, "-c", "import os; print(repr(os.environ['PYTHONUNBUFFERED']))"],
        "own",
        envs={"PYTHONUNBUFFERED": ""},
    )
    jobs.wait("own", timeout=30)
    assert jobs.job_logs("own")[0] == "''\n"


def test_a_working_directory_that_is_a_file_says_so(jobs):
    record = jobs.run(["true"], "cwd", cwd="/etc/passwd")
    assert (record.status, record.reason) == (
        "failed_start",
        "working directory is not a directory: /etc/passwd",
    )
