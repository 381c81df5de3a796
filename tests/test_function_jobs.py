"""Function jobs on the local backend: ``submit``/``result``, ``map_fn``, the executor, their files, and
``result`` on the CLI and ``%job``. (A function from a real kernel that was killed: ``test_kernel``.)"""

import concurrent.futures
import os
import stat
import sys
import threading
import time

import cloudpickle
import pytest
from polling import wait_until

from nodejobs import Jobs
from nodejobs.errors import FunctionError, NoResultError, ResultFileError, UnpicklableError
from nodejobs.faces.cli import main
from nodejobs.functions.callfile import RESULT_MAGIC, result_path
from nodejobs.functions.executor import JobFuture

TIMEOUT = 60
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # as a notebook's: the jobs need not import it
MODULE = __name__


def square(x):
    print(f"squaring {x}")
    return x * x


def explode(message):
    raise ValueError(message)


def wait_for(path, then=None):
    """Block (in the job) until ``path`` exists; return ``then``."""
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return then


def call_files(jobs):
    return sorted(name for name in os.listdir(jobs.jobdb.logdir) if name.endswith(".pkl"))


# -- submit and result ------------------------------------------------------------------------------


def test_a_function_runs_as_a_job_and_its_value_comes_back(jobs):
    record = jobs.submit(square, 7)
    assert record.self_id == "square-1" and record.command == f"{MODULE}.square(...)"
    assert jobs.result("square-1", timeout=TIMEOUT) == 49
    assert jobs.job_logs("square-1") == ("squaring 7\n", "")
    df = jobs.list_status().to_dataframe()
    assert df.loc["square-1", ["command", "status"]].tolist() == [f"{MODULE}.square(...)", "finished"]
    assert jobs.submit(square, 3).self_id == "square-2"


def test_every_argument_goes_to_the_function_and_run_options_go_by_submit_call(jobs):
    def keywords(**kwargs):
        return sorted(kwargs.items())

    jobs.submit(keywords, job_id="a", group="b")  # these are the function's arguments
    assert jobs.result("keywords-1", timeout=TIMEOUT) == [("group", "b"), ("job_id", "a")]
    record = jobs.submit_call(square, (5,), job_id="five", tags={"n": 5}, group="math")
    assert record.self_id == "five" and record.group == "math" and record.tag_values == {"n": 5}
    assert jobs.result("five", timeout=TIMEOUT) == 25


def test_lambdas_closures_and_functions_of_importable_modules(jobs, tmp_path, monkeypatch):
    offset = 10
    assert jobs.result(jobs.submit(lambda x: x + offset, 1).self_id, TIMEOUT) == 11
    assert jobs.get_status("lambda-1").command.endswith(".<locals>.<lambda>(...)")
    (tmp_path / "mymod.py").write_text("def train(lr):\n    return f'trained at {lr}'\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # only this process knows it: the job is told
    import mymod

    record = jobs.submit(mymod.train, 0.1)
    assert record.command == "mymod.train(...)" and record.self_id == "train-1"
    assert jobs.result("train-1", timeout=TIMEOUT) == "trained at 0.1"


def test_an_exception_arrives_with_its_traceback_text(jobs):
    jobs.submit(explode, "bad lr")
    with pytest.raises(FunctionError) as raised:
        jobs.result("explode-1", timeout=TIMEOUT)
    error = raised.value
    assert str(error) == "job 'explode-1' raised ValueError: bad lr" and error.job_id == "explode-1"
    assert isinstance(error.exception, ValueError) and error.exception.args == ("bad lr",)
    assert "in explode" in error.remote_traceback and "raise ValueError(message)" in error.remote_traceback
    assert error.remote_traceback in str(error.__cause__)
    record = jobs.get_status("explode-1")
    assert record.status == "failed" and record.exit_code == 1
    assert "ValueError: bad lr" in jobs.job_logs("explode-1")[1]


def test_an_unpicklable_return_value_is_an_error_of_the_function(jobs):
    def make_lock():
        return threading.Lock()

    jobs.submit(make_lock)
    with pytest.raises(FunctionError, match=r"return value of .*make_lock.* cannot be pickled") as raised:
        jobs.result("make_lock-1", timeout=TIMEOUT)
    assert raised.value.exception is None


def test_print_output_reaches_the_log_while_the_function_runs(jobs, tmp_path):
    gate = tmp_path / "gate"

    def talk():
        print("started")
        return wait_for(str(gate), "done")

    jobs.submit(talk)
    wait_until(lambda: jobs.job_logs("talk-1")[0] == "started\n", timeout=TIMEOUT, message="the print")
    assert jobs.get_status("talk-1").status == "running"
    gate.touch()
    assert jobs.result("talk-1", timeout=TIMEOUT) == "done"


# -- what has no result ------------------------------------------------------------------------------


def test_still_running_after_the_timeout_is_a_timeout_error(jobs, tmp_path):
    gate = tmp_path / "gate"
    jobs.submit(wait_for, str(gate), 42)
    with pytest.raises(TimeoutError, match="wait_for-1"):
        jobs.result("wait_for-1", timeout=0.2)
    gate.touch()
    assert jobs.result("wait_for-1", timeout=TIMEOUT) == 42


def test_a_stopped_job_and_a_shell_job_have_no_result(jobs, tmp_path):
    jobs.submit(wait_for, str(tmp_path / "never"))
    jobs.stop("wait_for-1", grace=0.5)
    with pytest.raises(NoResultError, match="job 'wait_for-1' ended stopped; it has no result"):
        jobs.result("wait_for-1")
    jobs.run(["true"], "shell")
    with pytest.raises(NoResultError, match="job 'shell' is not a function job"):
        jobs.result("shell")


def test_a_result_too_large_for_the_disk_fails_the_job_with_the_reason(jobs):
    def too_big():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return b"x" * 100_000  # writing it fails as on a full disk (EFBIG here, ENOSPC there)

    jobs.submit(too_big)
    with pytest.raises(NoResultError, match=r"failed \(exit 3\) without a result; .*cannot write the result"):
        jobs.result("too_big-1", timeout=TIMEOUT)
    assert not os.path.exists(result_path(jobs.get_status("too_big-1").call))
    assert [n for n in os.listdir(jobs.jobdb.logdir) if n.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no result file"),
        (b"PK\x03\x04 a zip file\n", "is not a nodejobs result file"),
        (RESULT_MAGIC + b" 99\n{}\n", "was written by another version of nodejobs"),
        ("truncate", "is damaged"),
    ],
    ids=["missing", "foreign", "other-version", "damaged"],
)
def test_a_missing_foreign_or_damaged_result_file_is_a_clear_error_naming_it(jobs, content, message):
    jobs.submit(square, 4)
    assert jobs.result("square-1", timeout=TIMEOUT) == 16
    path = result_path(jobs.get_status("square-1").call)
    if content is None:
        os.remove(path)
    elif content == "truncate":
        os.truncate(path, os.path.getsize(path) - 3)
    else:
        with open(path, "wb") as f:
            f.write(content)
    with pytest.raises(ResultFileError, match=message) as raised:
        jobs.result("square-1")
    assert path in str(raised.value) and "\n" not in str(raised.value)


# -- bad input: nothing recorded -------------------------------------------------------------------


def test_an_unpicklable_argument_fails_at_submit_with_nothing_recorded(jobs):
    with pytest.raises(UnpicklableError, match="cannot submit square: argument 1 cannot be") as raised:
        jobs.submit(square, threading.Lock())
    assert "\n" not in str(raised.value)
    with pytest.raises(UnpicklableError, match="argument 1"):
        jobs.map_fn(square, [1, 2, threading.Lock()])
    with pytest.raises(UnpicklableError):
        list(jobs.executor().map(square, [1, threading.Lock()]))
    assert list(jobs.list_status()) == [] and call_files(jobs) == []


def test_unknown_or_refused_run_options_change_nothing(jobs):
    with pytest.raises(ValueError, match=r"unknown (run option|resource).*'gorup'"):  # here, or by run
        jobs.submit_call(square, (1,), gorup="x")
    with pytest.raises(ValueError, match=r"unknown run option.*'call'"):
        jobs.submit_call(square, (1,), call=None)
    with pytest.raises(ValueError, match="invalid group"):
        jobs.submit_call(square, (1,), group="no spaces allowed")
    with pytest.raises(ValueError, match="give a prefix, not a job_id"):
        jobs.map_fn(square, [1], job_id="x")
    assert list(jobs.list_status()) == [] and call_files(jobs) == []


# -- files ----------------------------------------------------------------------------------------------


def test_call_and_result_files_are_private_and_removed_by_rm_and_clean(jobs):
    for n in (1, 2):
        jobs.submit(square, n)
        jobs.result(f"square-{n}", timeout=TIMEOUT)
    files = call_files(jobs)
    assert len(files) == 4 and all(n.startswith("square-") for n in files)
    for name in files:
        assert stat.S_IMODE(os.stat(os.path.join(jobs.jobdb.logdir, name)).st_mode) == 0o600
    jobs.remove("square-1")
    assert len(call_files(jobs)) == 2
    assert jobs.clean() == ["square-2"] and call_files(jobs) == []


def test_submitting_an_ended_function_jobs_id_again_replaces_its_files(jobs):
    jobs.submit_call(square, (2,), job_id="again")
    assert jobs.result("again", timeout=TIMEOUT) == 4
    jobs.submit_call(square, (3,), job_id="again")
    assert jobs.result("again", timeout=TIMEOUT) == 9
    assert len(call_files(jobs)) == 2  # the new call and its result only


def test_rerun_runs_the_same_pickled_call_again(jobs, tmp_path):
    counter = tmp_path / "runs"

    def count_runs(path):
        with open(path, "a") as f:
            f.write("run\n")
        with open(path) as f:
            return len(f.readlines())

    jobs.submit(count_runs, str(counter))
    assert jobs.result("count_runs-1", timeout=TIMEOUT) == 1
    record = jobs.rerun("count_runs-1")
    assert record.command.endswith("count_runs(...)") and record.call == jobs.get_status("count_runs-1").call
    assert jobs.result("count_runs-1", timeout=TIMEOUT) == 2


# -- many: map_fn and the executor -----------------------------------------------------------------------


def test_twenty_items_through_map_fn_with_a_limit_of_two_return_in_order(jobs):
    jobs.set_limit("squares", 2)
    ids = jobs.map_fn(square, range(20), group="squares")
    assert ids == [f"square-{n}" for n in range(1, 21)]
    assert [jobs.result(job_id, timeout=TIMEOUT) for job_id in ids] == [n * n for n in range(20)]
    assert {r.group for r in jobs.list_status().values()} == {"squares"}


def test_twenty_items_through_the_executor_map_with_a_limit_of_two_return_in_order(jobs):
    jobs.set_limit("pool", 2)
    with jobs.executor(group="pool", prefix="sq") as executor:
        assert isinstance(executor, concurrent.futures.Executor)
        assert list(executor.map(square, range(20), timeout=TIMEOUT * 3)) == [n * n for n in range(20)]
    assert sorted(jobs.list_status()) == sorted(f"sq-{n}" for n in range(1, 21))


def test_executor_futures_are_real_futures(jobs, tmp_path):
    gate = tmp_path / "gate"
    jobs.set_limit("one", 1)
    with jobs.executor(group="one") as executor:
        blocker = executor.submit(wait_for, str(gate), "unblocked")
        queued = executor.submit(square, 3)
        assert isinstance(blocker, JobFuture) and isinstance(blocker, concurrent.futures.Future)
        assert (blocker.job_id, queued.job_id) == ("wait_for-1", "square-1")
        assert not blocker.done() and not queued.running()
        assert queued.cancel() and queued.cancelled()
        assert jobs.get_status("square-1").status == "stopped"
        assert not blocker.cancel()  # running: as for any future
        with pytest.raises(concurrent.futures.TimeoutError):
            blocker.result(timeout=0.2)
        failing = executor.submit(explode, "boom")
        gate.touch()
        done, _ = concurrent.futures.wait([blocker, failing], timeout=TIMEOUT)
        assert done == {blocker, failing}
        assert blocker.result() == "unblocked"
        error = failing.exception()
        assert isinstance(error, ValueError) and "raise ValueError(message)" in str(error.__cause__)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(square, 1)


def test_executor_map_timeout_cancels_what_has_not_started(jobs, tmp_path):
    jobs.set_limit("slow", 1)
    executor = jobs.executor(group="slow")
    results = executor.map(wait_for, [str(tmp_path / "never")] * 3, timeout=0.5)
    with pytest.raises(concurrent.futures.TimeoutError):
        next(results)
    results.close()
    wait_until(lambda: [r.status for r in jobs.list_status().values()].count("stopped") == 2,
               timeout=TIMEOUT, message="the two queued calls cancelled")  # fmt: skip
    jobs.stop("wait_for-1", grace=0.5)
    executor.shutdown(wait=True)


def test_shutdown_waits_past_a_cancelled_future(jobs, tmp_path):
    gate = tmp_path / "gate"
    jobs.set_limit("one", 1)
    executor = jobs.executor(group="one")
    blocker = executor.submit(wait_for, str(gate), "done")
    queued = executor.submit(square, 2)
    assert queued.cancel()
    assert concurrent.futures.wait([queued], timeout=TIMEOUT).done == {queued}
    assert list(concurrent.futures.as_completed([queued], timeout=TIMEOUT)) == [queued]
    gate.touch()
    executor.shutdown(wait=True)  # the cancelled future may still be listed as pending
    assert blocker.result(timeout=0) == "done" and queued.cancelled()


def test_a_new_process_gets_the_result_of_a_job_submitted_by_another(jobs, db_path):
    jobs.submit(square, 12)
    with Jobs(db_path, reaper=False) as later:
        assert later.result("square-1", timeout=TIMEOUT) == 144


# -- the faces: `nodejobs result` and `%job result` -------------------------------------------------


def test_cli_result_prints_the_repr_or_a_one_line_error(jobs, db_path, capsys):
    jobs.submit_call(square, (6,), job_id="six")
    jobs.submit_call(explode, ("no",), job_id="bad")
    jobs.run(["true"], "shell")
    jobs.wait_all(["six", "bad", "shell"], timeout=TIMEOUT)
    assert main(["--db", db_path, "result", "six"]) == 0 and capsys.readouterr().out == "36\n"
    assert main(["--db", db_path, "result", "bad"]) == 1
    err = capsys.readouterr().err
    assert "raise ValueError(message)" in err
    assert err.endswith("nodejobs: error: job 'bad' raised ValueError: no\n")
    assert main(["--db", db_path, "result", "shell"]) == 1
    assert "is not a function job" in capsys.readouterr().err
    assert main(["--db", db_path, "result", "nope"]) == 2


def test_magic_result_displays_the_value(jobs, db_path, tmp_path):
    from IPython.core.error import UsageError
    from test_magics import get_shell

    shell = get_shell()
    shell.run_line_magic("load_ext", "nodejobs_magics")
    try:
        shell.run_line_magic("config", f"JobMagics.db_path = {db_path!r}")
        jobs.submit_call(square, (9,), job_id="nine")
        jobs.submit_call(wait_for, (str(tmp_path / "never"),), job_id="slow")
        assert shell.run_line_magic("job", "result nine") == 81
        with pytest.raises(UsageError, match=r"%job result: job 'slow' still running after 0\.1 s"):
            shell.run_line_magic("job", "result slow --timeout 0.1")
        with pytest.raises(UsageError, match="no job 'nope'"):
            shell.run_line_magic("job", "result nope")
    finally:
        shell.run_line_magic("unload_ext", "nodejobs_magics")
        shell.config.pop("JobMagics", None)
