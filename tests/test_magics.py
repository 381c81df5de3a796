"""``%job`` and ``%%job`` through IPython's InteractiveShell, as a notebook user would type them."""

import _thread
import io
import os
import sys
import threading

import pandas as pd
import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from conftest import pid_alive, wait_until
from nodejobs_magics import JobDashboard


def get_shell():
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    return InteractiveShell.instance(config=config)


def threads(prefix="nodejobs"):
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix))


@pytest.fixture
def ip():
    shell = get_shell()
    shell.run_line_magic("load_ext", "nodejobs_magics")
    yield shell
    magics = shell.magics_manager.registry.get("JobMagics")
    if magics is not None:
        for record in magics.jobs.list_status().values():
            if record.is_active:
                magics.jobs.stop(record.self_id, grace=0.2)
    shell.run_line_magic("unload_ext", "nodejobs_magics")
    shell.config.pop("JobMagics", None)  # %config settings live in the shared shell's config


def our_matchers(shell):
    return [m for m in shell.Completer.custom_matchers if m.matcher_identifier == "nodejobs_magics.job"]


def job(ip, line):
    return ip.run_line_magic("job", line)


def finished(ip, job_id):
    return job(ip, f"wait {job_id} --timeout 20")


def out(ip, job_id, err=False):
    return ip.magics_manager.registry["JobMagics"].jobs.job_logs(job_id)[1 if err else 0]


# -- loading ---------------------------------------------------------------------------------------


def test_load_starts_one_reaper_reload_does_not_duplicate_unload_stops_all():
    shell = get_shell()
    before = threads()
    shell.run_line_magic("load_ext", "nodejobs_magics")
    try:
        assert threads() == sorted([*before, "nodejobs-reaper"])
        shell.run_line_magic("reload_ext", "nodejobs_magics")
        shell.run_line_magic("job", "watch")
        assert threads() == sorted([*before, "nodejobs-dashboard", "nodejobs-reaper"])
        assert len(our_matchers(shell)) == 1
    finally:
        shell.run_line_magic("unload_ext", "nodejobs_magics")
    assert threads() == before
    assert shell.find_line_magic("job") is None and shell.find_cell_magic("job") is None
    assert not our_matchers(shell)


def test_config_db_path_and_job_db_switch_the_database(ip, tmp_path):
    ip.run_line_magic("config", f"JobMagics.db_path = {str(tmp_path / 'a')!r}")
    assert job(ip, "db") == str(tmp_path / "a")
    finished(ip, job(ip, "run --id x -- true").self_id)
    assert os.path.exists(tmp_path / "a" / "jobs.db")
    dashboard = job(ip, "watch")
    assert job(ip, f"db {tmp_path / 'b'}") == str(tmp_path / "b")
    assert list(job(ip, "list").index) == []
    assert dashboard.closed and threads() == ["nodejobs-reaper"]  # the old database's are closed


# -- %job run --------------------------------------------------------------------------------------


def test_run_splits_like_a_shell_and_keeps_quotes(ip):
    record = job(ip, """run --id q -- printf '%s|' "a b" 'c|d' e""")
    assert record.shell is False
    assert finished(ip, "q").status == "finished"
    assert out(ip, "q") == "a b|c|d|e|"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("echo hello | tr a-z A-Z", "HELLO\n"),
        ('"echo one; echo two"', "one\ntwo\n"),
        ("X=7 printenv X", "7\n"),
    ],
)
def test_run_shell_syntax_goes_through_the_shell(ip, line, expected):
    record = job(ip, f"run --id sh -- {line}")
    assert record.shell is True
    finished(ip, "sh")
    assert out(ip, "sh") == expected


def test_run_expands_python_variables_and_expressions(ip):
    ip.user_ns["word"] = "xyz"
    result = ip.run_cell("%job run --id v -- echo $word {2 + 3}")
    assert result.success, result.error_in_exec
    finished(ip, "v")
    assert out(ip, "v") == "xyz 5\n"


def test_run_without_id_makes_a_readable_one_and_shows_it(ip, capsys):
    first = job(ip, "run echo 1")
    second = job(ip, "run echo 2")
    assert (first.self_id, second.self_id) == ("echo-1", "echo-2")
    assert "echo-1" in capsys.readouterr().out


def test_run_with_env_and_cwd(ip, tmp_path):
    ip.user_ns["where"] = str(tmp_path)
    job(ip, "run --id e -e GREETING=hi -e EMPTY= --cwd {where} -- sh -c 'printenv GREETING; pwd'")
    assert finished(ip, "e").cwd == str(tmp_path)
    assert out(ip, "e") == f"hi\n{tmp_path}\n"


def test_run_that_cannot_start_is_a_record_not_a_traceback(ip):
    record = job(ip, "run --id nope -- /no/such/program")
    assert record.status == "failed_start" and "no such file" in record.reason


# -- listing and reading ---------------------------------------------------------------------------


def test_list_is_a_dataframe_with_real_dtypes(ip):
    finished(ip, job(ip, "run --id ok -- true").self_id)
    finished(ip, job(ip, "run --id bad -- sh -c 'sleep 0.1; exit 1'").self_id)
    job(ip, "run --id slow -- sleep 30")
    df = job(ip, "list")
    assert isinstance(df, pd.DataFrame) and list(df.index) == ["ok", "bad", "slow"]
    assert str(df["exit_code"].dtype) == "Int64" and str(df["started_at"].dtype).startswith("datetime64")
    assert list(df.query("status == 'failed'").index) == ["bad"]
    assert df.groupby("status").size().to_dict() == {"failed": 1, "finished": 1, "running": 1}
    assert list(job(ip, "list --status running").index) == ["slow"]
    assert list(job(ip, "list --status ended").index) == ["ok", "bad"]


def test_status_and_logs_with_tail_and_stderr(ip, capsys):
    job(ip, "run --id l -- sh -c 'seq 1 5; echo oops >&2'")
    finished(ip, "l")
    assert job(ip, "status l").exit_code == 0
    capsys.readouterr()
    job(ip, "logs l")
    job(ip, "logs l -n 2")
    job(ip, "logs l --err")
    assert capsys.readouterr().out == "1\n2\n3\n4\n5\n" + "4\n5\n" + "oops\n"


@pytest.mark.parametrize(
    "line, message",
    [
        ("status nope", "no job 'nope'"),
        ("bogus", "unknown sub-command 'bogus'"),
        ("logs", "the following arguments are required: ID"),
        ("list --status weird", "invalid choice: 'weird'"),
        ("run --id x", "no command given"),
        ("run --id x -e NOEQUALS -- true", "-e wants NAME=VALUE"),
        ("run --id ../x -- true", "invalid job id"),
        ("status 'unbalanced", "No closing quotation"),
        ("stop", "give a job ID or --all"),
    ],
)
def test_mistakes_are_one_line_usage_errors(ip, line, message):
    with pytest.raises(UsageError, match=message):
        job(ip, line)


def test_a_usage_error_prints_one_line_without_traceback(ip, capsys):
    ip.run_cell("%job status nope")
    err = capsys.readouterr().err
    assert err.startswith("UsageError: %job: no job 'nope' in ") and len(err.strip().splitlines()) == 1
    assert err.rstrip().endswith("(`%job ls` lists them)")


# -- following and waiting -------------------------------------------------------------------------


def test_follow_streams_output_until_the_job_ends(ip, tmp_path, capsys):
    gate = tmp_path / "gate"
    job(ip, f"run --id f -- sh -c 'echo first; while [ ! -e {gate} ]; do sleep 0.02; done; echo second'")
    wait_until(lambda: "first" in out(ip, "f"), message="first line")
    threading.Thread(target=gate.touch).start()
    capsys.readouterr()
    assert job(ip, "follow f") is None
    text = capsys.readouterr().out
    assert text.startswith("first\nsecond\n[f finished (exit 0)")


def test_interrupting_follow_stops_following_not_the_job(ip, monkeypatch):
    seen = threading.Event()

    class Stdout(io.StringIO):
        def write(self, text):
            if "tick" in text:
                seen.set()
            return super().write(text)

    stdout = Stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    record = job(ip, "run --id t -- sh -c 'echo tick; exec sleep 30'")

    def interrupt():
        if seen.wait(20):
            _thread.interrupt_main()

    threading.Thread(target=interrupt).start()
    job(ip, "follow t")
    assert "stopped following t; the job keeps running" in stdout.getvalue()
    assert job(ip, "status t").status == "running" and pid_alive(record.last_pid)


def test_wait_shows_progress_and_returns_the_final_record(ip, capsys):
    job(ip, "run --id w -- sh -c 'echo working; sleep 1; exit 3'")
    wait_until(lambda: "working" in out(ip, "w"), message="the job's first line")
    record = job(ip, "wait w")
    assert (record.status, record.exit_code) == ("failed", 3)
    shown = capsys.readouterr().out
    assert "w running" in shown and "working" in shown and "w failed (exit 3)" in shown


def test_wait_timeout_is_an_error_and_leaves_the_job_running(ip):
    job(ip, "run --id long -- sleep 30")
    with pytest.raises(UsageError, match=r"still running after 0\.2 s"):
        job(ip, "wait long --timeout 0.2")
    assert job(ip, "status long").status == "running"


# -- stopping, rerunning, removing -----------------------------------------------------------------


def test_stop_one_and_stop_all(ip):
    records = [job(ip, f"run --id s{i} -- sleep 30") for i in range(3)]
    assert job(ip, "stop s0 --grace 1").status == "stopped"
    stopped = job(ip, "stop --all --grace 1")
    assert sorted(stopped) == ["s1", "s2"] and {r.status for r in stopped.values()} == {"stopped"}
    assert not any(pid_alive(r.last_pid) for r in records)


def test_rerun_runs_the_same_command_again(ip):
    job(ip, "run --id r -- sh -c 'echo again'")
    first = finished(ip, "r")
    job(ip, "run --id busy -- sleep 30")
    with pytest.raises(UsageError, match="still running"):
        job(ip, "rerun busy")
    with pytest.raises(UsageError, match="'busy' is still running"):
        job(ip, "run --id busy -- true")
    second = job(ip, "rerun r")
    assert finished(ip, "r").started_at > first.started_at and second.command == first.command
    assert out(ip, "r") == "again\n"


def test_rm_and_clean_remove_ended_jobs_and_their_logs(ip, capsys):
    for name in ("a", "b", "c"):
        finished(ip, job(ip, f"run --id {name} -- echo {name}").self_id)
    job(ip, "run --id live -- sleep 30")
    with pytest.raises(UsageError, match="still running"):
        job(ip, "rm live")
    job(ip, "rm a")
    job(ip, "clean")
    assert "removed 2 ended job(s): b, c" in capsys.readouterr().out
    assert list(job(ip, "list").index) == ["live"]
    logdir = os.path.dirname(ip.magics_manager.registry["JobMagics"].jobs.log_path("live"))
    assert sorted(os.listdir(logdir)) == ["live_errors.txt", "live_out.txt"]


def test_watch_shows_and_returns_a_live_dashboard_closed_on_unload(ip, capsys):
    job(ip, "run --id wd -- true")
    capsys.readouterr()
    ip.run_cell("%job watch wd")  # displayed once, not again as the cell's value
    assert capsys.readouterr().out.count("JobDashboard(") == 1
    dashboard = job(ip, "watch wd")
    assert isinstance(dashboard, JobDashboard) and list(dashboard.rows) == ["wd"]
    by_hand = JobDashboard()  # made without a Jobs: it opens its own, closed with it
    assert by_hand.jobs is not ip.magics_manager.registry["JobMagics"].jobs
    ip.run_line_magic("unload_ext", "nodejobs_magics")
    assert dashboard.closed and not dashboard._thread.is_alive() and not by_hand.closed
    by_hand.close()
    ip.run_line_magic("load_ext", "nodejobs_magics")


# -- help and completion ---------------------------------------------------------------------------


def test_help_is_real(ip, capsys):
    doc = ip.find_line_magic("job").__doc__
    assert "%job [subcommand] [args ...]" in doc and "follow" in doc and "watch" in doc
    assert "--shell" in ip.find_cell_magic("job").__doc__
    job(ip, "help")
    job(ip, "help run")
    job(ip, "stop -h")
    text = capsys.readouterr().out
    assert "JobMagics.db_path" in text and "/bin/sh -c exactly as typed" in text and "--all" in text


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # IPython.complete is the public API
def test_tab_completion_offers_subcommands_and_job_ids(ip):
    job(ip, "run --id alpha-1 -- true")
    job(ip, "run --id beta -- true")
    assert ip.complete("st", "%job st", 7)[1] == ["status", "stop"]
    assert ip.complete("", "%job logs ", 10)[1] == ["alpha-1", "beta"]
    assert ip.complete("al", "%job wait al", 12)[1] == ["alpha-1"]
    assert "running" in ip.complete("ru", "%job list --status ru", 21)[1]


# -- %%job -----------------------------------------------------------------------------------------


def test_cell_runs_with_bash_saves_the_script_and_reruns_it(ip):
    body = 'for i in 1 2; do echo "line $i"; done\n[[ -n "$BASH_VERSION" ]] && echo bash\n'
    record = ip.run_cell_magic("job", "cell1", body)
    assert record.self_id == "cell1"
    assert finished(ip, "cell1").exit_code == 0
    assert out(ip, "cell1") == "line 1\nline 2\nbash\n"
    script = ip.magics_manager.registry["JobMagics"].jobs.script_path("cell1", ".sh")
    with open(script) as f:
        assert f.read() == body
    job(ip, "rerun cell1")
    assert finished(ip, "cell1").exit_code == 0 and out(ip, "cell1") == "line 1\nline 2\nbash\n"


def test_cell_with_python_uses_the_kernel_interpreter(ip):
    ip.run_cell_magic("job", "py --shell python", "import sys\nprint(sys.executable)\n")
    assert finished(ip, "py").status == "finished"
    assert out(ip, "py").strip() == sys.executable


def test_cell_generated_id_env_and_cwd(ip, tmp_path):
    record = ip.run_cell_magic("job", f"-e WHO=cell --cwd {tmp_path}", "# comment\nprintenv WHO\npwd\n")
    assert record.self_id == "printenv-1"
    finished(ip, record.self_id)
    assert out(ip, record.self_id) == f"cell\n{tmp_path}\n"


def test_cell_refuses_a_running_id_and_keeps_its_script(ip):
    ip.run_cell_magic("job", "busy", "echo started\nsleep 30\n")
    with pytest.raises(UsageError, match="still running"):
        ip.run_cell_magic("job", "busy", "echo other\n")
    script = ip.magics_manager.registry["JobMagics"].jobs.script_path("busy", ".sh")
    with open(script) as f:
        assert f.read() == "echo started\nsleep 30\n"


def test_logs_of_a_huge_log_shows_only_its_tail(ip, capsys):
    job(ip, "run --id big -- sh -c 'seq 1 300000'")
    finished(ip, "big")
    ip.run_line_magic("config", "JobMagics.logs_max_bytes = 100000")
    capsys.readouterr()
    job(ip, "logs big")
    shown = capsys.readouterr().out
    assert "the last 1000 lines follow" in shown
    assert shown.rstrip().endswith("300000") and "\n299001\n" in shown and "\n299000\n" not in shown


# -- one grammar with the CLI ----------------------------------------------------------------------


def test_aliases_and_logs_follow(ip, capsys):
    job(ip, "run --id al -- sh -c 'echo one; echo two'")
    finished(ip, "al")
    assert list(job(ip, "ls").index) == list(job(ip, "list").index) == ["al"]
    capsys.readouterr()
    job(ip, "logs al -f")
    job(ip, "follow al -n 1")
    text = capsys.readouterr().out
    first, second = text.split("]\n", 1)
    assert first.startswith("one\ntwo\n[al finished (exit 0)") and second.startswith("two\n[al finished")


def test_follow_and_wait_of_a_failed_job_show_the_end_of_its_stderr(ip, capsys, tmp_path):
    (tmp_path / "crash.py").write_text("print('working', flush=True)\nraise SystemExit('it broke')\n")
    job(ip, f"run --id crash -- {sys.executable} {tmp_path / 'crash.py'}")
    capsys.readouterr()
    job(ip, "follow crash")
    text = capsys.readouterr().out
    assert text.startswith("working\n[crash failed (exit 1)") and text.endswith(
        "]\n[stderr of crash, last lines]\nit broke\n"
    )
    assert job(ip, "wait crash").exit_code == 1
    assert capsys.readouterr().out.endswith("[stderr of crash, last lines]\nit broke\n")


def test_wait_for_several_any_and_inf(ip, tmp_path):
    gate = tmp_path / "gate"
    job(ip, "run --id quick -- true")
    job(ip, f"run --id gated -- sh -c 'while [ ! -e {gate} ]; do sleep 0.02; done'")
    assert job(ip, "wait gated quick --any --timeout inf").self_id == "quick"
    with pytest.raises(UsageError, match=r"gated still running after 0\.1 s"):
        job(ip, "wait quick gated --timeout 0.1")
    gate.touch()
    both = job(ip, "wait quick gated --timeout inf")
    assert list(both) == ["quick", "gated"] and {r.status for r in both.values()} == {"finished"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("wait x --timeout -1", "argument --timeout: expected seconds"),
        ("stop x --grace -1", "argument --grace: expected seconds"),
        ("logs x -n -3", "argument -n/--lines: expected a whole number"),
        ("rerun x -e 1X=2", "-e wants NAME=VALUE"),
        ("run --id y -e A-B=1 -- true", "-e wants NAME=VALUE"),
        ("rm x nosuch", "no job 'nosuch'"),
        ("stop x --all", "not both"),
    ],
)
def test_bad_values_are_one_line_usage_errors_and_nothing_is_done(ip, line, message):
    job(ip, "run --id x -- sleep 30")
    with pytest.raises(UsageError, match=message):
        job(ip, line)
    assert job(ip, "status x").status == "running" and list(job(ip, "ls").index) == ["x"]


def test_stop_several_and_stop_all_with_nothing_running(ip, capsys):
    for name in ("a", "b"):
        job(ip, f"run --id {name} -- sleep 30")
    stopped = job(ip, "stop a b --grace 1")
    assert list(stopped) == ["a", "b"] and {r.status for r in stopped.values()} == {"stopped"}
    capsys.readouterr()
    assert job(ip, "stop --all") is None
    assert capsys.readouterr().out == "no active jobs\n"
    result = ip.run_cell("%job stop --all")
    assert result.result is None  # nothing shown as Out[]


def test_rm_checks_every_id_first(ip):
    finished(ip, job(ip, "run --id a -- true").self_id)
    with pytest.raises(UsageError, match="no job 'nosuch'"):
        job(ip, "rm a nosuch")
    assert list(job(ip, "ls").index) == ["a"]
    finished(ip, job(ip, "run --id b -- true").self_id)
    job(ip, "rm a b")
    assert list(job(ip, "ls").index) == []


def test_rerun_with_env_again_or_without(ip):
    job(ip, "run --id envy -e TOKEN=s3cret -- sh -c 'echo \"[$TOKEN]\"'")  # no $ expansion here
    finished(ip, "envy")
    with pytest.raises(UsageError, match="TOKEN"):
        job(ip, "rerun envy")
    job(ip, "rerun envy -e TOKEN=again")
    finished(ip, "envy")
    assert out(ip, "envy") == "[again]\n"
    job(ip, "rerun envy --without-env")
    finished(ip, "envy")
    assert out(ip, "envy") == "[]\n"


def test_backend_setting(ip):
    ip.run_line_magic("config", "JobMagics.backend = 'local'")
    assert ip.magics_manager.registry["JobMagics"].jobs.backend == "local"
    ip.run_line_magic("config", "JobMagics.backend = 'nosuch'")
    with pytest.raises(UsageError, match="unknown backend 'nosuch'"):
        job(ip, "ls")
    ip.run_line_magic("config", "JobMagics.backend = 'local'")


def completions(ip, text):
    """What Tab offers at the end of ``text``, through IPython's own completer."""
    with provisionalcompleter():
        return sorted({c.text for c in ip.Completer.completions(text, len(text))})


def test_tab_completion_through_the_completer(ip):
    job(ip, "run --id live-1 -- sleep 30")
    finished(ip, job(ip, "run --id done-1 -- true").self_id)
    subcommands = ["clean", "db", "follow", "help", "limit", "list", "logs", "ls", "rerun", "result", "rm",
                   "run", "status", "stop", "sweep", "timeline", "top", "wait", "watch"]  # fmt: skip
    assert completions(ip, "%job ") == subcommands  # no Python keywords (and, if, in, ...)
    assert completions(ip, "x = %job lis") == ["list"]
    run_flags = ["--after", "--at", "--cpus", "--cwd", "--env", "--gpus", "--group", "--help", "--id",
                 "--keep-leftovers", "--mem", "--partition", "--slurm-opt", "--tag", "--time",
                 "--timeout"]  # fmt: skip
    assert completions(ip, "%job run --") == run_flags
    assert completions(ip, "%job run -") == sorted([*run_flags, "-e", "-h"])
    assert completions(ip, "%job stop ") == ["live-1"]
    assert completions(ip, "%job rm ") == ["done-1"]
    assert completions(ip, "%job rerun d") == ["done-1"]
    assert completions(ip, "%job logs ") == ["done-1", "live-1"]
    assert "running" in completions(ip, "%job ls --status ru")


def test_run_keep_leftovers(ip):
    jobs = ip.magics_manager.registry["JobMagics"].jobs
    ip.run_line_magic("job", "run --id kept --keep-leftovers -- 'sleep 100 & echo $!'")
    jobs.wait("kept", timeout=30)
    child = int(jobs.job_logs("kept")[0])
    assert pid_alive(child)
    ip.run_line_magic("job", "stop kept")
    wait_until(lambda: not pid_alive(child), message="the leftover to be ended")


def test_top_list_limit_timeline_and_clean_options(ip, capsys):
    for name in ("a", "b", "c"):
        finished(ip, job(ip, f"run --id {name} -- true").self_id)
    job(ip, "run --id live -- sleep 30")
    top = job(ip, "top")
    assert list(top.index) == ["live"] and str(top["rss"].dtype) == "Int64" and top.loc["live", "rss"] > 0
    capsys.readouterr()
    ip.run_line_magic("config", "JobMagics.list_limit = 2")
    assert list(job(ip, "list").index) == ["c", "live"]
    assert "[showing the newest 2 of 4 jobs" in capsys.readouterr().out
    assert list(job(ip, "list --limit 0").index) == ["a", "b", "c", "live"]
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = job(ip, "timeline --status ended")
    assert len(fig.axes[0].patches) == 3
    plt.close(fig)
    with pytest.raises(UsageError, match="older-than"):
        job(ip, "clean --older-than soon")
    job(ip, "clean --status finished --older-than 0s")
    assert "removed 3 ended job(s): a, b, c" in capsys.readouterr().out


def test_sweep_limit_and_queue_options(ip):
    assert job(ip, "limit gpu 1") == {"gpu": 1}
    first = job(ip, "run --id m1 --group gpu --tag lr=0.5 -- sleep 30")
    second = job(ip, "run --id m2 --group gpu --after m1 --timeout 9 -- true")
    assert first.status == "running" and second.status == "queued" and second.reason == "waiting for m1"
    df = job(ip, "ls --tag lr=0.5")
    assert list(df.index) == ["m1"] and df.loc["m1", "lr"] == 0.5 and df.loc["m1", "group"] == "gpu"
    stopped = job(ip, "stop m2")
    assert (stopped.status, stopped.reason) == ("stopped", "stopped while queued")
    runs = job(ip, "sweep --prefix s --limit 1 -p x=1,2 -- echo {{x}}")
    assert list(runs) == ["s-x1", "s-x2"]
    assert [r.status for r in job(ip, "wait s-x1 s-x2 --timeout 20").values()] == ["finished", "finished"]
    assert out(ip, "s-x2") == "2\n"
    with pytest.raises(UsageError, match="whole number >= 1"):
        job(ip, "limit gpu 0")
