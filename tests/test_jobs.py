"""The ``Jobs`` API as a user sees it: run, logs, start failures, ends, ids, wait, follow, defaults."""

import os
import shlex

import pytest

from conftest import wait_until
from nodejobs import (
    InvalidInputError,
    InvalidJobIdError,
    JobExistsError,
    JobNotFoundError,
    Jobs,
    JobStillRunningError,
    UnknownFieldError,
    default_db_path,
)
from nodejobs.model.ids import readable_base

ENDED = {"finished", "failed", "stopped"}

BAD_IDS = ["", "/", "../x", "a/b", "a\x00b", "a\x01b", "a\nb", "x" * 129, ".", "..", "-x", "\ud800"]


class Patient:
    """``Jobs`` whose ``run`` returns once the job has ended: for asserting on quick jobs' final records."""

    def __init__(self, jobs: Jobs) -> None:
        self._jobs = jobs

    def run(self, command, job_id=None, **options):
        record = self._jobs.run(command, job_id, **options)
        return self._jobs.wait(record.self_id, timeout=30) if record.is_active else record

    def __getattr__(self, name):
        return getattr(self._jobs, name)


@pytest.fixture
def patient(jobs):
    return Patient(jobs)


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (``rchar`` of /proc/self/io)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def gated(go, then: str) -> str:
    """A shell command that waits until the file ``go`` exists, then runs ``then``."""
    return f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.01; done; {then}"


def test_list_runs_directly_without_a_shell(patient):
    rec = patient.run(["printf", "%s|%s", "a b", "$HOME"], "direct")
    assert rec.status == "finished" and rec.shell is False
    assert patient.job_logs("direct") == ("a b|$HOME", "")
    assert rec.command == "printf '%s|%s' 'a b' '$HOME'"


def test_string_runs_through_sh_with_pipes_and_redirects(patient, tmp_path):
    rec = patient.run("echo one two | tr a-z A-Z > piped.txt; echo done >&2", "shell", cwd=str(tmp_path))
    assert rec.status == "finished" and rec.shell is True and rec.exit_code == 0
    assert (tmp_path / "piped.txt").read_text() == "ONE TWO\n"
    assert patient.job_logs("shell") == ("", "done\n")
    assert rec.cwd == str(tmp_path)


def test_each_job_has_its_own_session_and_writes_straight_to_its_files(jobs, db_path):
    rec = jobs.run(["sleep", "30"], "alone")
    assert rec.status == "running" and rec.last_pid and rec.started_at and rec.exit_code is None
    assert os.getsid(rec.last_pid) == rec.supervisor_pid != os.getsid(0)  # a session apart from us
    assert os.getpgid(rec.last_pid) == rec.supervisor_pid
    logdir = os.path.join(db_path, "logs")
    assert os.readlink(f"/proc/{rec.last_pid}/fd/1") == os.path.join(logdir, "alone_out.txt")
    assert os.readlink(f"/proc/{rec.last_pid}/fd/2") == os.path.join(logdir, "alone_errors.txt")
    # dirname is the job's own name for its files, as in the original nodejobs
    assert (rec.logdir, rec.logfile, rec.dirname) == (logdir, "alone", "alone")


def test_logs_land_in_logdir_and_are_replaced_on_relaunch(patient, db_path):
    patient.run("echo first; echo first-err >&2", "x")
    out = os.path.join(db_path, "logs", "x_out.txt")
    err = os.path.join(db_path, "logs", "x_errors.txt")
    assert (open(out).read(), open(err).read()) == ("first\n", "first-err\n")
    patient.run("echo second", "x")
    assert patient.job_logs("x") == ("second\n", "")
    patient.run(["/no/such/program"], "x")  # a relaunch that cannot even start
    out_text, err_text = patient.job_logs("x")
    assert out_text == "" and "/no/such/program" in err_text


def test_envs_reach_the_job(patient):
    rec = patient.run('echo "$GREETING-$NODEJOBS_JOB_ID"', "env", envs={"GREETING": "hi"})
    assert patient.job_logs("env")[0] == "hi-env\n"
    assert rec.env_keys == "GREETING"


@pytest.mark.parametrize(
    "command, words",
    [
        (["no-such-program-xyz"], "not found"),
        (["/no/such/dir/prog"], "no such file"),
        ("no-such-program-xyz --flag", "not found"),  # sh reports 127
    ],
)
def test_missing_executable_fails_to_start(patient, command, words):
    rec = patient.run(command, "missing")
    assert rec.status == "failed_start"
    assert rec.ended_at is not None
    err = patient.job_logs("missing")[1]
    assert words in ((rec.reason or "") + err).lower()


def test_missing_cwd_fails_to_start(patient, tmp_path):
    for command in (["true"], "true"):
        rec = patient.run(command, "nocwd", cwd=str(tmp_path / "gone"))
        assert rec.status == "failed_start"
        assert "gone" in rec.reason and rec.last_pid is None
        assert "gone" in patient.job_logs("nocwd")[1]


def test_non_executable_file_fails_to_start(patient, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho should not run\n")
    script.chmod(0o644)
    for command in ([str(script)], ["./script.sh"], [str(tmp_path)]):
        rec = patient.run(command, "noexec", cwd=str(tmp_path))
        assert rec.status == "failed_start", command
        assert "permission" in rec.reason or "not executable" in rec.reason
        assert patient.job_logs("noexec")[0] == ""


def test_a_quick_nonzero_exit_is_failed_not_failed_start(patient):
    rec = patient.run("echo oops >&2; exit 3", "early")
    assert (rec.status, rec.exit_code) == ("failed", 3)
    assert rec.ended_at >= rec.started_at
    assert patient.job_logs("early")[1] == "oops\n"


def test_statuses_do_not_depend_on_how_fast_a_job_ends(jobs):
    ids = []
    for delay in (0, 0.001, 0.005, 0.02, 0.2):
        for i in range(20):
            ids.append(f"exit3-{delay}-{i}")
            jobs.run(f"sleep {delay}; exit 3", ids[-1])
    for i in range(5):
        ids.append(f"missing-{i}")
        jobs.run(["bash", "-c", "no-such-program-xyz 1"], ids[-1])
    final = {job_id: jobs.wait(job_id, timeout=60) for job_id in ids}
    assert {(r.status, r.exit_code) for i, r in final.items() if i.startswith("exit3")} == {("failed", 3)}
    assert {(r.status, r.exit_code) for i, r in final.items() if i.startswith("missing")} == {
        ("failed_start", 127)
    }


def test_a_job_that_ends_at_once_is_reported_ended_by_run(jobs):
    """``run`` waits briefly for an immediate failure, as the original nodejobs' users expect."""
    assert jobs.run(["bash", "-c", "no-such-program-xyz 1"], "nf").status == "failed_start"


def test_zero_exit_is_finished(patient):
    rec = patient.run(["true"], "quick")
    assert (rec.status, rec.exit_code) == ("finished", 0)
    assert rec.ended_at >= rec.started_at and rec.duration >= 0


@pytest.mark.parametrize(
    "then, status, code",
    [("exit 0", "finished", 0), ("exit 7", "failed", 7), ("kill -TERM $$", "failed", 143)],
)
def test_a_job_ending_after_startup_records_status_code_and_end(jobs, tmp_path, then, status, code):
    go = tmp_path / "go"
    rec = jobs.run(gated(go, then), "later")
    assert rec.status == "running"
    go.touch()
    final = jobs.wait("later", timeout=30)
    assert (final.status, final.exit_code) == (status, code)
    assert final.ended_at >= final.started_at
    assert jobs.get_status("later") == final


def test_every_ended_job_has_exit_code_end_time_and_a_final_status(jobs, tmp_path):
    go = tmp_path / "go"
    for i, then in enumerate(["exit 0", "exit 1", "sleep 30", "kill -KILL $$"]):
        jobs.run(gated(go, then), f"j{i}")
    jobs.stop("j2")
    go.touch()
    for i in range(4):
        jobs.wait(f"j{i}", timeout=30)
    records = jobs.list_status()
    assert {k: (r.status, r.exit_code) for k, r in records.items()} == {
        "j0": ("finished", 0),
        "j1": ("failed", 1),
        "j2": ("stopped", 143),
        "j3": ("failed", 137),
    }
    for r in records.values():
        assert r.status in ENDED and r.exit_code is not None and r.ended_at >= r.started_at


def test_stop_returns_stopped_quickly_for_a_job_that_exits_on_sigterm(jobs):
    jobs.run(["sleep", "30"], "s")
    rec = jobs.stop("s", grace=20)
    assert (rec.status, rec.exit_code) == ("stopped", 143)  # 143 = SIGTERM: no escalation to SIGKILL
    assert rec.ended_at is not None


def test_stop_unknown_id_is_none_and_stop_of_ended_job_changes_nothing(patient):
    assert patient.stop("nobody") is None
    patient.run("exit 2", "done")
    before = patient.get_status("done")
    assert patient.stop("done") == before
    assert patient.get_status("done") == before


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_ids_are_refused_and_nothing_is_written(jobs, tmp_path, bad):
    def files():
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "wal" not in p.name)

    before = files()
    with pytest.raises(InvalidJobIdError):
        jobs.run(["touch", str(tmp_path / "ran")], bad)
    for call in (jobs.get_status, jobs.stop, jobs.job_logs, jobs.tail, jobs.wait):
        with pytest.raises(InvalidJobIdError):
            call(bad)
    assert files() == before
    assert jobs.list_status() == {}


def test_unknown_filter_keys_are_an_error_and_values_are_bound(patient):
    patient.run("true", "a")
    with pytest.raises(UnknownFieldError, match="colour"):
        patient.list_status({"colour": "red"})
    assert list(patient.list_status({"status": "finished"})) == ["a"]
    assert patient.list_status({"self_id": "a' OR '1'='1"}) == {}
    assert list(patient.list_status()) == ["a"]


def test_running_id_is_refused_and_nothing_starts(jobs, tmp_path):
    first = jobs.run("echo started; exec sleep 30", "busy")
    wait_until(lambda: jobs.job_logs("busy")[0] == "started\n", message="first output")
    marker = tmp_path / "second-ran"
    with pytest.raises(JobExistsError, match="busy"):
        jobs.run(["touch", str(marker)], "busy")
    now = jobs.get_status("busy")
    assert (now.status, now.supervisor_pid, now.command) == ("running", first.supervisor_pid, first.command)
    assert jobs.job_logs("busy")[0] == "started\n"  # the running job's log was not truncated
    jobs.stop("busy")
    assert not marker.exists()


def test_the_id_of_an_ended_job_reruns_it(jobs, tmp_path):
    go = tmp_path / "go"
    jobs.run("echo one; exit 4", "again")
    assert jobs.wait("again", 30).exit_code == 4
    rec = jobs.run(gated(go, "echo two"), "again")
    assert rec.status == "running"
    assert rec.exit_code is None and rec.ended_at is None and rec.reason is None  # nothing stale
    go.touch()
    final = jobs.wait("again", 30)
    assert (final.status, final.exit_code) == ("finished", 0)
    assert jobs.job_logs("again") == ("two\n", "")


def test_rerun_remove_and_clean(jobs):
    jobs.run("echo $((1 + 1))", "calc")
    jobs.wait("calc", 30)
    jobs.rerun("calc")
    assert jobs.wait("calc", 30).status == "finished"
    assert jobs.job_logs("calc")[0] == "2\n"
    jobs.run(["sleep", "30"], "long")
    with pytest.raises(JobStillRunningError):
        jobs.remove("long")
    with pytest.raises(JobStillRunningError):
        jobs.rerun("long")
    jobs.remove("calc")
    assert jobs.get_status("calc") is None
    with pytest.raises(JobNotFoundError):
        jobs.remove("calc")
    jobs.run("true", "t1")
    jobs.wait("t1", 30)
    assert jobs.clean() == ["t1"]
    assert list(jobs.list_status()) == ["long"]


def test_non_utf8_output_is_read_back_with_replacement_characters(patient):
    patient.run(r"printf 'caf\351 \377\n'; printf '\376' >&2", "bytes")
    assert patient.job_logs("bytes") == ("caf\ufffd \ufffd\n", "\ufffd")
    assert patient.tail("bytes", 1) == "caf\ufffd \ufffd\n"
    assert "".join(patient.follow("bytes", "err")) == "\ufffd"


def test_tail_last_lines_of_either_stream(patient):
    patient.run("seq 1 100; seq 1 3 >&2", "count")
    assert patient.tail("count", 2) == "99\n100\n"
    assert patient.tail("count", 1, stream="err") == "3\n"
    with pytest.raises(JobNotFoundError):
        patient.tail("nobody")


def test_tail_of_a_200mb_log_does_not_read_it_whole(patient, db_path):
    patient.run("echo start", "huge")
    out = os.path.join(db_path, "logs", "huge_out.txt")
    with open(out, "r+b") as f:  # grow it to 200 MB at once (a hole), then a few last lines
        f.truncate(200 * 1024 * 1024)
        f.seek(0, os.SEEK_END)
        f.write(b"".join(b"line %d\n" % i for i in range(50)))
    before = bytes_read()
    text = patient.tail("huge", 3)
    read = bytes_read() - before
    assert text == "line 47\nline 48\nline 49\n"
    assert read < 1024 * 1024, f"read {read} bytes of a 200 MB log to show 3 lines"


def test_wait_with_timeout_raises_timeout_error(jobs):
    jobs.run(["sleep", "30"], "slow")
    with pytest.raises(TimeoutError, match="slow"):
        jobs.wait("slow", timeout=0.05)
    assert jobs.get_status("slow").status == "running"
    with pytest.raises(JobNotFoundError):
        jobs.wait("nobody", timeout=1)


def test_follow_yields_output_as_written_and_ends_with_the_job(jobs, tmp_path):
    go = tmp_path / "go"
    jobs.run("echo first; " + gated(go, r"echo second; printf 'last\377'"), "talk")
    chunks = jobs.follow("talk")
    assert next(chunks) == "first\n"  # yielded while the job still runs
    assert jobs.get_status("talk").status == "running"
    go.touch()
    rest = "".join(chunks)  # ends by itself when the job ends
    assert rest == "second\nlast\ufffd"
    assert jobs.get_status("talk").status == "finished"


def test_follow_from_the_end_and_bad_stream(patient):
    patient.run("echo old", "f")
    assert "".join(patient.follow("f", from_start=False)) == ""
    with pytest.raises(ValueError, match="stream"):
        next(patient.follow("f", stream="both"))


def test_new_job_ids_are_readable_and_unique(patient):
    assert patient.run("python train.py --lr 1", None).self_id == "train-1"
    assert patient.run(["python", "train.py"]).self_id == "train-2"
    assert patient.run("FOO=1 sleep 0").self_id == "sleep-1"
    assert patient.new_job_id("/usr/bin/env") == "env-1"


def test_list_status_brings_records_up_to_date_without_a_reaper(db_path, tmp_path, jobs):
    go = tmp_path / "go"
    with Jobs(db_path, reaper=False) as quiet:
        quiet.run(gated(go, "exit 0"), "q")
        go.touch()
        exit_file = os.path.join(db_path, "logs", "q.exit")  # written, not only created by the redirection:
        wait_until(lambda: os.path.exists(exit_file) and os.path.getsize(exit_file) > 0, message="exit code")
        assert quiet.jobdb.get("q").status == "running"  # nobody has folded the end yet
        assert quiet.list_status()["q"].status == "finished"
        assert quiet.jobdb.get("q").exit_code == 0


def test_default_db_path_comes_from_nodejobs_home(monkeypatch, tmp_path):
    home = tmp_path / "nj-home"
    monkeypatch.setenv("NODEJOBS_HOME", str(home))
    assert default_db_path() == str(home)
    with Jobs(startup_window=30.0) as j:
        assert j.db_path == str(home)
        assert j.run("echo default", "d").status == "finished"
    assert (home / "jobs.db").is_file()
    assert (home / "logs" / "d_out.txt").read_text() == "default\n"


def test_default_db_path_without_nodejobs_home(monkeypatch, tmp_path):
    monkeypatch.delenv("NODEJOBS_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == str(tmp_path / "xdg" / "nodejobs")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_db_path() == str(tmp_path / "user" / ".local" / "share" / "nodejobs")


def test_context_manager_stops_the_reaper_but_not_the_jobs(db_path):
    with Jobs(db_path) as j:
        rec = j.run(["sleep", "30"], "survivor")
        reaper = j.processes.reaper
        assert reaper.alive
    assert not reaper.alive
    with Jobs(db_path) as again:
        assert again.get_status("survivor").status == "running"
        assert again.stop("survivor").status == "stopped"
    assert rec.last_pid


@pytest.mark.parametrize(
    ("command", "base"),
    [
        ("python train.py --lr 1", "train"),
        (["python3", "-u", "x.py"], "x"),
        ("python -m http.server 8000", "server"),
        ("python -c 'print(1)'", "python"),
        ("bash ./etl.sh", "etl"),
        ("FOO=1 sleep 5", "sleep"),
        ("echo 'unbalanced", "echo"),
    ],
)
def test_readable_ids_name_the_script_not_the_interpreter(command, base):
    assert readable_base(command) == base


def test_a_submission_is_checked_once_and_stored_as_the_record_keeps_it():
    import dataclasses

    from nodejobs.model.submission import Submission

    submission = Submission.make(tags={"b": 1, "a": "x"}, after="dep", timeout=5, envs={"K": 1})
    fields = submission.record_fields()
    assert (fields["group"], fields["timeout"], fields["env_keys"]) == ("default", 5.0, "K")
    assert (fields["tags"], fields["after"]) == ('{"a": "x", "b": 1}', '["dep"]')
    assert submission.envs == {"K": "1"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        submission.group = "other"
    with pytest.raises(ValueError, match="invalid group"):
        Submission.make(group="-x")


def test_a_backend_error_can_be_caught_from_the_package():
    from nodejobs import BackendError, NodeJobsError

    assert issubclass(BackendError, NodeJobsError)


@pytest.mark.parametrize(
    "call",
    [
        lambda j: j.run("true", "bad-group", group="-x"),
        lambda j: j.run("true", "bad-at", at="tomorrow-ish"),
        lambda j: j.run("true", "bad-tag", tags={"not an identifier": 1}),
        lambda j: j.run("true", "bad/id"),
        lambda j: j.list_status(since="yesterday-ish"),
        lambda j: j.list_status({"no_such_field": 1}),
        lambda j: j.set_limit("g", 0),
        lambda j: Jobs(j.db_path, backend="nosuch"),
    ],
)
def test_every_refusal_of_input_is_an_invalid_input_error_and_writes_nothing(jobs, call):
    with pytest.raises(InvalidInputError) as refused:
        call(jobs)
    assert isinstance(refused.value, ValueError)  # code written for ValueError still catches it
    assert "\n" not in str(refused.value)
    assert jobs.count() == 0 and jobs.limits() == {}
