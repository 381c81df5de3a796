"""The ``nodejobs`` command: every sub-command through ``main([...])``, and the real console script once."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from nodejobs.cli import main


@pytest.fixture
def cli(db_path, jobs, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` on the test database (``jobs`` cleans up after)."""

    def run(*args):
        code = main(["--db", db_path, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def one_line_error(err: str, *words: str) -> bool:
    return err.startswith("nodejobs: error: ") and err.count("\n") == 1 and all(w in err for w in words)


def gated(go, then: str) -> str:
    return f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.01; done; {then}"


def test_run_wait_status_and_logs(cli, tmp_path):
    code, out, _ = cli(
        "run",
        "--id",
        "hello",
        "--cwd",
        str(tmp_path),
        "-e",
        "WHO=world",
        "--",
        "sh",
        "-c",
        'echo "hi $WHO"; pwd; echo oops >&2',
    )
    assert code == 0 and out.startswith("hello: ")
    code, out, _ = cli("wait", "hello")
    assert (code, out) == (0, "hello: finished, exit code 0\n")
    assert cli("status", "hello")[1] == "hello: finished, exit code 0\n"
    code, out, _ = cli("status", "hello", "--json")
    record = json.loads(out)
    assert (record["self_id"], record["exit_code"], record["cwd"]) == ("hello", 0, str(tmp_path))
    assert cli("logs", "hello")[1] == f"hi world\n{tmp_path}\n"
    assert cli("logs", "hello", "-n", "1")[1] == f"{tmp_path}\n"
    assert cli("logs", "hello", "--err")[1] == "oops\n"
    assert cli("logs", "hello", "-f")[1] == f"hi world\n{tmp_path}\n"  # ended: prints all, returns


def test_one_argument_runs_through_sh_and_ids_are_generated(cli):
    code, out, _ = cli("run", "--", "echo abc | tr a-c A-C > /dev/stdout")
    assert code == 0 and out.startswith("echo-1: ")
    assert cli("wait", "echo-1")[0] == 0
    assert cli("logs", "echo-1")[1] == "ABC\n"
    code, out, _ = cli("run", "echo", "no", "dashes")
    assert out.startswith("echo-2: ")


def test_ls_table_json_and_status_filter(cli):
    cli("run", "--id", "good", "--", "true")
    cli("run", "--id", "bad", "--", "sh", "-c", "exit 3")
    cli("wait", "good")
    cli("wait", "bad")
    code, out, _ = cli("ls")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ID", "STATUS", "EXIT"]
    assert {line.split()[0] for line in lines[1:]} == {"good", "bad"}
    listed = json.loads(cli("ls", "--json")[1])
    assert {k: v["exit_code"] for k, v in listed.items()} == {"good": 0, "bad": 3}
    code, out, _ = cli("ls", "--status", "finished", "--json")
    assert list(json.loads(out)) == ["good"]


def test_wait_reports_failure_and_timeout(cli):
    cli("run", "--id", "fails", "--", "sh", "-c", "sleep 0.05; exit 4")
    code, out, _ = cli("wait", "fails")
    assert code == 1 and "exit code 4" in out
    cli("run", "--id", "slow", "--", "sleep", "30")
    code, _, err = cli("wait", "slow", "--timeout", "0.05")
    assert code == 1 and one_line_error(err, "slow")


def test_stop(cli):
    code, out, _ = cli("run", "--id", "s", "--", "sleep", "30")
    assert out.startswith("s: running")
    code, out, _ = cli("stop", "s")
    assert (code, out) == (0, "s: stopped, exit code 143\n")
    code, out, _ = cli("stop", "s")  # already ended: unchanged
    assert (code, out) == (0, "s: stopped, exit code 143\n")


def test_rm_and_clean(cli, db_path):
    cli("run", "--id", "a", "--", "true")
    cli("run", "--id", "b", "--", "true")
    cli("run", "--id", "live", "--", "sleep", "30")
    cli("wait", "a")
    cli("wait", "b")
    assert cli("rm", "a")[0] == 0
    assert not os.path.exists(os.path.join(db_path, "logs", "a_out.txt"))
    code, _, err = cli("rm", "live")
    assert code == 1 and one_line_error(err, "live", "running")
    assert cli("clean")[1] == "removed 1 ended job(s)\n"
    assert list(json.loads(cli("ls", "--json")[1])) == ["live"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["status", "nobody"], ["nobody"]),
        (["logs", "nobody"], ["nobody"]),
        (["stop", "nobody"], ["nobody"]),
        (["wait", "nobody"], ["nobody"]),
        (["rm", "nobody"], ["nobody"]),
        (["run", "--id", "../x", "--", "true"], ["invalid job id"]),
        (["run", "--id", "x"], ["needs a command"]),
        (["run", "-e", "NOEQUALS", "--", "true"], ["KEY=VALUE"]),
        (["logs", "x", "-n", "2", "--err"], ["x"]),
    ],
)
def test_errors_are_one_line_and_a_nonzero_exit(cli, args, words):
    code, _, err = cli(*args)
    assert code != 0
    assert one_line_error(err, *words), err


@pytest.mark.parametrize(
    "args, words",
    [
        (["bogus"], ["invalid choice", "bogus"]),
        (["logs"], ["required", "job_id"]),
        (["ls", "--status", "x"], ["x"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(db_path, capsys, args, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["--db", db_path, *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and "error:" in err and all(w in err for w in words), err


def test_failed_start_is_a_nonzero_exit(cli):
    code, out, _ = cli("run", "--id", "nope", "--", "no-such-program-xyz", "arg")
    assert code == 1 and out.startswith("nope: failed_start") and "not found" in out


def test_running_id_is_an_error(cli):
    cli("run", "--id", "busy", "--", "sleep", "30")
    code, _, err = cli("run", "--id", "busy", "--", "true")
    assert code == 1 and one_line_error(err, "busy", "still running")


def console_script() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "nodejobs")
    return beside if os.path.exists(beside) else shutil.which("nodejobs")


def test_the_console_script_end_to_end(tmp_path, jobs):
    exe = console_script()
    env = {**os.environ, "NODEJOBS_HOME": jobs.db_path}  # no --db: the environment chooses the database
    go = tmp_path / "go"

    def nodejobs(*args):
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)

    started = nodejobs("run", "--id", "talk", "--", "echo first; " + gated(go, "echo second"))
    assert started.returncode == 0 and started.stdout.startswith("talk: running"), started.stderr
    follow = subprocess.Popen([exe, "logs", "-f", "talk"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout.readline() == "first\n"  # printed while the job still runs
        go.touch()
        rest, _ = follow.communicate(timeout=60)  # the follower ends by itself with the job
    finally:
        follow.kill()
    assert rest == "second\n" and follow.returncode == 0
    assert nodejobs("wait", "talk").stdout == "talk: finished, exit code 0\n"
    assert jobs.get_status("talk").status == "finished"  # the API sees what the script did
    failed = nodejobs("status", "nobody")
    assert failed.returncode == 1 and one_line_error(failed.stderr, "nobody")


def test_python_dash_m_runs_the_same_cli(db_path):
    done = subprocess.run(
        [sys.executable, "-m", "nodejobs", "--db", db_path, "ls", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(done.stdout) == {}
