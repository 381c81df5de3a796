"""The ``nodejobs`` command: every sub-command through ``main([...])``, and the real console script once."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
from polling import pid_alive, wait_until

from nodejobs.faces.cli import main


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
    assert code == 0 and out.startswith("hello ")
    code, out, _ = cli("wait", "hello")
    assert code == 0 and out.startswith("hello finished (exit 0) after ") and out.count("\n") == 1
    assert cli("status", "hello")[1] == out  # one wording: the summary of the magics
    code, out, _ = cli("status", "hello", "--json")
    record = json.loads(out)
    assert (record["self_id"], record["exit_code"], record["cwd"]) == ("hello", 0, str(tmp_path))
    assert cli("logs", "hello")[1] == f"hi world\n{tmp_path}\n"
    assert cli("logs", "hello", "-n", "1")[1] == f"{tmp_path}\n"
    assert cli("logs", "hello", "--err")[1] == "oops\n"
    assert cli("logs", "hello", "-f")[1] == f"hi world\n{tmp_path}\n"  # ended: prints all, returns


def test_one_argument_runs_through_sh_and_ids_are_generated(cli):
    code, out, _ = cli("run", "--", "echo abc | tr a-c A-C > /dev/stdout")
    assert code == 0 and out.startswith("echo-1 ")
    assert cli("wait", "echo-1")[0] == 0
    assert cli("logs", "echo-1")[1] == "ABC\n"
    code, out, _ = cli("run", "echo", "no", "dashes")
    assert out.startswith("echo-2 ")


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


def test_wait_exit_status_is_the_jobs_own_code_124_for_a_timeout_2_for_an_unknown_id(cli):
    cli("run", "--id", "fails", "--", "sh", "-c", "sleep 0.05; echo trace-end >&2; exit 4")
    code, out, err = cli("wait", "fails")
    assert code == 4 and out.startswith("fails failed (exit 4)")
    assert err == "[stderr of fails, last lines]\ntrace-end\n"  # the end of its stderr, after the summary
    cli("run", "--id", "slow", "--", "sleep", "30")
    code, _, err = cli("wait", "slow", "--timeout", "0.05")
    assert code == 124 and one_line_error(err, "slow", "still running after 0.05 s")
    code, out, err = cli("wait", "fails", "nobody")
    assert (code, out) == (2, "") and one_line_error(err, "no job 'nobody'", "nodejobs ls lists them")


def test_stop(cli):
    code, out, _ = cli("run", "--id", "s", "--", "sleep", "30")
    assert out.startswith("s running (pid ")
    code, out, _ = cli("stop", "s")
    assert code == 0 and out.startswith("s stopped (exit 143) after ")
    assert cli("stop", "s") == (0, out, "")  # already ended: unchanged


def test_rm_and_clean(cli, db_path):
    cli("run", "--id", "a", "--", "true")
    cli("run", "--id", "b", "--", "true")
    cli("run", "--id", "live", "--", "sleep", "30")
    cli("wait", "a")
    cli("wait", "b")
    assert cli("rm", "a") == (0, "removed a\n", "")
    assert not os.path.exists(os.path.join(db_path, "logs", "a_out.txt"))
    code, _, err = cli("rm", "live")
    assert code == 1 and one_line_error(err, "live", "running")
    assert cli("clean")[1] == "removed 1 ended job(s): b\n"
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
        (["run", "-e", "NOEQUALS", "--", "true"], ["-e wants NAME=VALUE", "'NOEQUALS'"]),
        (["run", "-e", "1X=2", "--", "true"], ["-e wants NAME=VALUE", "'1X=2'"]),
        (["run", "-e", "A-B=2", "--", "true"], ["-e wants NAME=VALUE", "'A-B=2'"]),
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
        (["logs"], ["required", "ID"]),
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
    assert code == 1 and out.startswith("nope failed_start") and "not found" in out


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
    assert started.returncode == 0 and started.stdout.startswith("talk running"), started.stderr
    follow = subprocess.Popen([exe, "logs", "-f", "talk"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout.readline() == "first\n"  # printed while the job still runs
        go.touch()
        rest, _ = follow.communicate(timeout=60)  # the follower ends by itself with the job
    finally:
        follow.kill()
    assert rest == "second\n" and follow.returncode == 0
    assert nodejobs("wait", "talk").stdout.startswith("talk finished (exit 0) after ")
    assert jobs.get_status("talk").status == "finished"  # the API sees what the script did
    failed = nodejobs("status", "nobody")
    assert failed.returncode == 2 and one_line_error(failed.stderr, "nobody")


def test_python_dash_m_runs_the_same_cli(db_path):
    done = subprocess.run(
        [sys.executable, "-m", "nodejobs", "--db", db_path, "ls", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(done.stdout) == {}


# -- one grammar with the magics -------------------------------------------------------------------


def test_version_and_backend(capsys, db_path):
    from nodejobs import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"nodejobs {__version__}\n"
    assert main(["--db", db_path, "--backend", "local", "ls", "--json"]) == 0
    assert capsys.readouterr().out == "{}\n"
    assert main(["--db", db_path, "--backend", "nosuch", "ls"]) == 2
    assert one_line_error(capsys.readouterr().err, "unknown backend 'nosuch'")


def test_aliases_list_and_follow(cli):
    cli("run", "--id", "al", "--", "sh", "-c", "echo one")
    cli("wait", "al")
    assert cli("list")[1] == cli("ls")[1]
    assert cli("follow", "al") == (0, "one\n", "")


def test_wait_for_several_any_and_inf(cli, tmp_path):
    go = tmp_path / "go"
    cli("run", "--id", "ok", "--", "true")
    cli("run", "--id", "bad", "--", "sh", "-c", "exit 5")
    cli("run", "--id", "gated", "--", gated(go, "exit 0"))
    code, out, _ = cli("wait", "ok", "bad", "--timeout", "inf", "--any")
    assert code == 0 and out.startswith("ok finished")  # the first (in order) that ended
    code, _, err = cli("wait", "ok", "gated", "bad", "--timeout", "0.1")
    assert code == 124 and "'gated' still running" in err  # gated is the first that did not finish
    go.touch()
    code, out, _ = cli("wait", "ok", "gated", "bad", "--timeout", "inf")
    assert code == 5 and [line.split()[0] for line in out.splitlines()] == ["ok", "gated", "bad"]


def test_logs_follow_of_a_failed_job_reports_it_and_exits_as_wait(cli):
    cli("run", "--id", "crash", "--", "sh", "-c", "echo working; sleep 0.1; echo 'Error: boom' >&2; exit 7")
    code, out, err = cli("logs", "crash", "-f")
    assert (code, out) == (7, "working\n")
    assert err.startswith("crash failed (exit 7) after ") and err.endswith("\nError: boom\n")
    assert cli("logs", "crash", "-f", "--new")[0] == 7


@pytest.mark.parametrize(
    "args, words",
    [
        (["wait", "x", "--timeout", "-1"], ["--timeout", "'-1'"]),
        (["wait", "x", "--timeout", "soon"], ["--timeout", "'soon'"]),
        (["stop", "x", "--grace", "-1"], ["--grace", "'-1'"]),
        (["logs", "x", "-n", "-3"], ["--lines", "'-3'"]),
    ],
)
def test_negative_numbers_are_usage_errors_and_nothing_is_done(cli, capsys, db_path, args, words):
    cli("run", "--id", "x", "--", "sleep", "30")
    with pytest.raises(SystemExit) as exit_info:
        main(["--db", db_path, *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and all(w in err for w in words), err
    assert json.loads(cli("status", "x", "--json")[1])["status"] == "running"


def test_stop_several_and_all(cli):
    for name in ("s1", "s2", "s3"):
        cli("run", "--id", name, "--", "sleep", "30")
    code, out, _ = cli("stop", "s1", "s2", "--grace", "1")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [["s1", "stopped"], ["s2", "stopped"]]
    assert cli("stop", "s1", "nobody")[0] == 2
    assert cli("stop", "--all")[1].startswith("s3 stopped")
    assert cli("stop", "--all")[1] == "no active jobs\n"
    code, _, err = cli("stop")
    assert code == 2 and one_line_error(err, "give a job ID or --all")


def test_rm_checks_every_id_before_deleting_any(cli):
    cli("run", "--id", "a", "--", "true")
    cli("run", "--id", "live", "--", "sleep", "30")
    cli("wait", "a")
    code, _, err = cli("rm", "a", "nosuch")
    assert code == 2 and one_line_error(err, "no job 'nosuch'")
    assert cli("rm", "a", "live")[0] == 1
    assert sorted(json.loads(cli("ls", "--json")[1])) == ["a", "live"]  # nothing was deleted


def test_rerun_needs_the_env_values_again_or_without_env(cli):
    cli("run", "--id", "envy", "-e", "TOKEN=s3cret", "--", "sh", "-c", 'echo "[$TOKEN]"')
    cli("wait", "envy")
    code, _, err = cli("rerun", "envy")
    assert code == 1 and one_line_error(err, "TOKEN")
    assert cli("rerun", "envy", "-e", "TOKEN=again")[0] == 0
    cli("wait", "envy")
    assert cli("logs", "envy")[1] == "[again]\n"
    assert cli("rerun", "envy", "--without-env")[0] == 0
    cli("wait", "envy")
    assert cli("logs", "envy")[1] == "[]\n"
    assert cli("rerun", "envy", "-e", "9=x")[0] == 2


def _pipe_to_head(exe, db_path, *args):
    """``nodejobs ARGS | head -1``: (exit status of nodejobs, its stderr, what head printed)."""
    script = f"{shlex.join([exe, '--db', db_path, *args])} 2>err.txt | head -1; echo $" + "{PIPESTATUS[0]}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=db_path)
    first, status = done.stdout.splitlines()
    with open(os.path.join(db_path, "err.txt")) as f:
        return int(status), f.read(), first


def test_a_closed_pipe_ends_quietly_with_141(jobs, db_path):
    jobs.run(["seq", "1", "300000"], "big")
    jobs.wait("big", 30)
    for n in range(40):  # a listing longer than a pipe's buffer
        jobs.run(["true", "x" * 2000], f"j{n}")
    assert _pipe_to_head(console_script(), db_path, "logs", "big", "-f") == (141, "", "1")
    status, err, first = _pipe_to_head(console_script(), db_path, "ls")
    assert (status, err) == (141, "") and first.split()[0] == "ID"


def test_keep_leftovers_leaves_a_background_child_running_until_stop(cli, jobs):
    code, _, _ = cli("run", "--id", "kept", "--keep-leftovers", "--", "sleep 100 & echo $!")
    assert code == 0
    assert cli("wait", "kept")[0] == 0
    child = int(jobs.job_logs("kept")[0])
    assert pid_alive(child)
    cli("stop", "kept")  # an ended job: stop still reaches what it left
    wait_until(lambda: not pid_alive(child), message="the leftover to be ended")


def test_top_ls_limit_and_clean_by_age_and_status(cli, db_path, capsys):
    for name in ("a", "b", "c"):
        cli("run", "--id", name, "--", "true")
        cli("wait", name)
    cli("run", "--id", "bad", "--", "sh", "-c", "exit 3")
    cli("wait", "bad")
    cli("run", "--id", "live", "--", "sleep", "30")
    code, out, _ = cli("top")
    header = ["ID", "STATUS", "ELAPSED", "CPU%", "RSS", "PEAK", "THREADS"]
    assert code == 0 and out.splitlines()[0].split() == header
    assert out.splitlines()[1].split()[:2] == ["live", "running"] and len(out.splitlines()) == 2
    assert json.loads(cli("top", "--json")[1])["live"]["rss"] > 0
    code, out, err = cli("ls", "--limit", "2")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["bad", "live"]  # the newest 2, oldest first
    assert err == "showing the newest 2 of 5 jobs (--limit N for more, 0 for all)\n"
    assert cli("ls", "--since", "1h", "--limit", "0")[1].count("\n") == 6
    with pytest.raises(SystemExit) as exit_info:
        main(["--db", db_path, "clean", "--older-than", "soon"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "expected an age such as 30d" in err and err.count("\n") == 1
    assert cli("clean", "--older-than", "30d")[1] == "removed 0 ended job(s)\n"
    assert cli("clean", "--status", "failed")[1] == "removed 1 ended job(s): bad\n"
    assert cli("clean", "--status", "finished", "--older-than", "0s")[1] == (
        "removed 3 ended job(s): a, b, c\n"
    )


def test_queue_options_limit_sweep_and_ls_with_group_position_and_reason(cli, jobs):
    assert cli("limit", "gpu", "1") == (0, "gpu: 1\n", "")
    assert cli("run", "--id", "a", "--group", "gpu", "--tag", "lr=0.1", "--", "sleep", "30")[0] == 0
    queued = ("--group", "gpu", "--tag", "lr=0.01", "--timeout", "5")
    code, out, _ = cli("run", "--id", "b", *queued, "--", "true")
    assert code == 0 and out == "b queued in group gpu: waiting for slot in group gpu (1/1 running)\n"
    out = cli("run", "--id", "c", "--after", "a,b", "--", "true")[1]
    assert out == "c queued in group default: waiting for a, b\n"
    code, out, _ = cli("ls")
    header, *rows = out.splitlines()
    assert header.split()[7:10] == ["GROUP", "POS", "REASON"]
    assert rows[1].split()[:8] == ["b", "queued", "-", "-", "-", "-", "gpu", "1"]
    assert [line.split()[0] for line in cli("ls", "--tag", "lr=0.01")[1].splitlines()[1:]] == ["b"]
    assert jobs.get_status("b").tag_values == {"lr": 0.01} and jobs.get_status("b").timeout == 5.0
    assert cli("stop", "a", "--grace", "0.5")[0] == 0
    code, out, _ = cli("wait", "b", "c", "--timeout", "20")
    assert code == 1 and "b finished" in out and "c dependency_failed: dependency 'a' ended stopped" in out
    code, out, _ = cli("sweep", "--limit", "2", "--prefix", "e", "-p", "n=1,2", "--", "echo {n}")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["e-n1", "e-n2"]
    assert cli("wait", "e-n1", "e-n2", "--timeout", "20")[0] == 0 and jobs.job_logs("e-n2")[0] == "2\n"


@pytest.mark.parametrize(
    "args, words",
    [
        (["limit", "gpu", "0"], ["whole number >= 1"]),
        (["limit", "gpu", "two"], ["whole number >= 1", "'two'"]),
        (["limit", "gpu"], ["limit wants GROUP N"]),
        (["run", "--at", "noon", "--", "true"], ["--at wants", "'noon'"]),
        (["run", "--timeout", "0", "--", "true"], ["timeout must be seconds > 0"]),
        (["run", "--tag", "1x=2", "--", "true"], ["tag names must be identifiers"]),
        (["run", "--tag", "novalue", "--", "true"], ["--tag wants NAME=VALUE"]),
        (["run", "--after", "ghost", "--", "true"], ["unknown dependency 'ghost'"]),
        (["run", "--id", "me", "--after", "me", "--", "true"], ["after itself"]),
        (["sweep", "--", "echo {n}"], ["-p NAME=V1,V2"]),
    ],
)
def test_bad_queue_input_is_one_line_and_writes_nothing(cli, jobs, args, words):
    code, _, err = cli(*args)
    assert code != 0 and one_line_error(err, *words), err
    assert jobs.list_status() == {} and jobs.limits() == {}
