"""The daemonless queue with real processes: limits and slots, dependencies, delayed start, time limits,
tags and sweeps, a queued job's environment, and healing after a reboot."""

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from conftest import wait_until
from nodejobs import JobDB, JobFilter, Jobs
from nodejobs.queue.dispatcher import MARKER

STAMPS = (
    "echo start $(date +%s.%N) $NODEJOBS_SLOT > {out}/{name}; sleep {secs}; "
    "echo end $(date +%s.%N) >> {out}/{name}"
)


def stamped(out, name, secs=0.3):
    """A shell command that writes its own start and end times (and its slot) to ``out/name``."""
    return STAMPS.format(out=out, name=name, secs=secs)


def read_stamps(out, name):
    lines = (out / name).read_text().split("\n")
    start = lines[0].split()
    return float(start[1]), float(lines[1].split()[1]), start[2] if len(start) > 2 else None


def max_overlap(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_a_limit_of_2_holds_across_4_processes_submitting_at_once(jobs, db_path, tmp_path):
    out = tmp_path / "stamps"
    out.mkdir()
    jobs.set_limit("pair", 2)
    submitter = textwrap.dedent(f"""
        import sys
        from nodejobs import Jobs
        STAMPS = {STAMPS!r}
        with Jobs({db_path!r}, reaper=False) as jobs:
            for i in range(4):
                name = f"p{{sys.argv[1]}}-{{i}}"
                jobs.run(STAMPS.format(out={str(out)!r}, name=name, secs=0.2), name, group="pair")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", submitter, str(n)]) for n in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    names = [f"p{n}-{i}" for n in range(4) for i in range(4)]
    jobs.wait_all(names, timeout=60)
    assert {r.status for r in jobs.list_status({"group": "pair"}).values()} == {"finished"}
    stamps = {name: read_stamps(out, name) for name in names}
    assert max_overlap([(s, e) for s, e, _ in stamps.values()]) == 2  # never 3, and it did run 2 at once
    for a, (sa, ea, slot_a) in stamps.items():  # jobs running at once never share a slot
        assert slot_a in ("0", "1")
        for b, (sb, eb, slot_b) in stamps.items():
            if a < b and sa < eb and sb < ea:
                assert slot_a != slot_b, (a, b)


def test_dependencies_run_in_order_and_a_failure_ends_the_dependents_at_once(db_path, tmp_path):
    jobs = Jobs(db_path)
    out = tmp_path / "stamps"
    out.mkdir()
    jobs.run(stamped(out, "prep"), "prep")
    jobs.run(stamped(out, "train"), "train", after="prep")
    summary = jobs.run(stamped(out, "summary", 0), "summary", after=["prep", "train"])
    assert summary.status == "queued" and summary.reason == "waiting for prep, train"
    jobs.wait_all(["prep", "train", "summary"], timeout=30)
    (_, prep_end, _), (train_start, train_end, _) = read_stamps(out, "prep"), read_stamps(out, "train")
    assert prep_end <= train_start and train_end <= read_stamps(out, "summary")[0]

    gate = tmp_path / "gate"
    jobs.run(f"while [ ! -e {gate} ]; do sleep 0.02; done; exit 3", "bad")
    jobs.run("echo never", "child", after="bad")
    jobs.run("echo never", "grandchild", after="child")
    jobs.close()  # no process of ours is left to dispatch: the bad job's supervisor must do it
    gate.touch()
    db = JobDB(db_path)
    wait_until(lambda: db.get("grandchild").status == "dependency_failed", timeout=20, message="dependents")
    assert db.get("child").reason == "dependency 'bad' ended failed"
    assert db.get("grandchild").reason == "dependency 'child' ended dependency_failed"
    assert db.get("child").exit_code is None and not os.path.exists(db.pending_path(db.get("child")))


def test_unknown_dependencies_and_cycles_are_refused_and_nothing_is_written(jobs):
    with pytest.raises(ValueError, match="unknown dependency 'ghost'"):
        jobs.run("true", "x", after=["ghost"])
    with pytest.raises(ValueError, match="after itself"):
        jobs.run("true", "self", after="self")
    assert jobs.list_status() == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"at": "tomorrow"}, "--at wants seconds"),
        ({"at": datetime(2030, 1, 1)}, "no timezone"),
        ({"at": -5}, "seconds >= 0"),
        ({"timeout": -1}, "timeout must be seconds > 0"),
        ({"tags": {"1x": 1}}, "tag names must be identifiers"),
        ({"tags": {"x": [1]}}, "a value must be"),
        ({"group": "a b"}, "invalid group"),
    ],
)
def test_bad_queue_options_are_one_line_errors_and_nothing_is_written(jobs, options, message):
    with pytest.raises(ValueError, match=message):
        jobs.run("true", "x", **options)
    assert jobs.list_status() == {}


@pytest.mark.parametrize("n", [0, -1, 1.5, "2", True])
def test_bad_limits_are_refused(jobs, n):
    with pytest.raises(ValueError, match="whole number >= 1"):
        jobs.set_limit("g", n)
    assert jobs.limits() == {}


def test_a_delayed_job_starts_on_time_with_no_process_of_ours_running(db_path, tmp_path):
    jobs = Jobs(db_path)
    stamp = tmp_path / "started"
    at = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    record = jobs.run(f"date +%s.%N > {stamp}", "later", at=at)
    assert record.status == "queued" and record.reason.startswith("starts at ")
    jobs.close()  # only the detached sleep is left to start it
    wait_until(lambda: stamp.exists() and stamp.read_text().strip(), timeout=15, message="the delayed job")
    assert 0 <= float(stamp.read_text()) - at.timestamp() < 1.0


def test_a_time_limit_ends_the_job_as_timed_out_even_with_no_process_of_ours(db_path):
    jobs = Jobs(db_path)
    jobs.run("trap '' TERM; sleep 30", "slow", timeout=0.3)
    jobs.close()
    db = JobDB(db_path)
    wait_until(lambda: os.path.exists(db.exit_path(db.get("slow"))), timeout=15, message="the time limit")
    with Jobs(db_path) as again:
        record = again.get_status("slow")
        assert record.status == "timed_out" and "time limit of 0.3 s" in record.reason
        assert record.exit_code == 137  # it ignored SIGTERM: SIGKILL after the grace
        again.run("sleep 30", "stopped-by-user", timeout=30)
        assert again.stop("stopped-by-user", grace=1).status == "stopped"  # a user's stop stays a stop


def test_stop_of_a_queued_job_removes_it_from_the_queue_and_its_environment(jobs):
    jobs.set_limit("one", 1)
    jobs.run("sleep 30", "first", group="one")
    waiting = jobs.run("echo $TOKEN", "second", group="one", envs={"TOKEN": "s3cret"})
    pending = jobs.jobdb.pending_path(waiting)
    assert waiting.status == "queued" and oct(os.stat(pending).st_mode & 0o777) == "0o600"
    stopped = jobs.stop("second")
    assert (stopped.status, stopped.reason) == ("stopped", "stopped while queued")
    assert not os.path.exists(pending)


def test_a_queued_job_runs_with_the_environment_and_directory_it_was_submitted_with(jobs, db_path, tmp_path):
    jobs.set_limit("one", 1)
    gate = tmp_path / "gate"
    jobs.run(f"while [ ! -e {gate} ]; do sleep 0.02; done", "blocker", group="one")
    workdir = tmp_path / "work"
    workdir.mkdir()
    submitter = (
        "from nodejobs import Jobs\n"
        f"with Jobs({db_path!r}, reaper=False) as jobs:\n"
        "    jobs.run('echo $FROM_SUBMITTER $SECRET; pwd', 'later', group='one', envs={'SECRET': 'hush'})\n"
    )
    env = {**os.environ, "FROM_SUBMITTER": "mine"}
    subprocess.run([sys.executable, "-c", submitter], env=env, cwd=workdir, check=True, timeout=60)
    pending = jobs.jobdb.pending_path(jobs.get_status("later"))
    assert os.path.exists(pending)
    assert "hush" not in open(jobs.jobdb.db_file, "rb").read().decode("latin-1")
    os.environ.pop("FROM_SUBMITTER", None)
    gate.touch()  # the blocker's supervisor starts "later"
    record = jobs.wait("later", 30)
    assert record.status == "finished" and jobs.job_logs("later")[0] == f"mine hush\n{workdir}\n"
    assert not os.path.exists(pending)


def test_tags_are_filterable_and_become_dataframe_columns_and_map_submits_a_sweep(jobs):
    records = jobs.map("exit $(( {code} ))", [{"lr": 0.1, "code": 0}, {"lr": 0.01, "code": 1},
                                               {"lr": 0.01, "code": 0}], prefix="sweep", limit=2)  # fmt: skip
    assert list(records) == ["sweep-lr0.1-code0", "sweep-lr0.01-code1", "sweep-lr0.01-code0"]
    assert jobs.limits() == {"sweep": 2}
    jobs.wait(list(records), timeout=30)
    picked = jobs.list_status(JobFilter(tags={"lr": 0.01}))
    assert sorted(picked) == ["sweep-lr0.01-code0", "sweep-lr0.01-code1"]
    df = jobs.list_status().to_dataframe()
    assert df.groupby("lr")["exit_code"].mean().to_dict() == {0.01: 0.5, 0.1: 0.0}
    assert set(df["group"]) == {"sweep"}


def test_wait_all_with_any_returns_when_one_has_ended(jobs):
    jobs.run("sleep 30", "long")
    jobs.run("true", "short")
    waited = jobs.wait_all(["long", "short"], timeout=20, any=True)
    assert waited["short"].status == "finished" and waited["long"].is_active


def test_a_reboot_like_case_heals_on_the_next_call(jobs, db_path):
    jobs.set_limit("one", 1)
    jobs.run("sleep 30", "before-reboot", group="one")
    jobs.run("echo after", "queued-job", group="one")
    jobs.run("echo dependent", "dependent", after="before-reboot")
    stop_for_real = jobs.get_status("before-reboot")
    db = JobDB(db_path)
    db._execute("UPDATE jobs SET boot_id = 'another-boot', handle = NULL WHERE self_id = 'before-reboot'")
    os.kill(stop_for_real.supervisor_pid, 9)  # as a reboot would: no exit file is ever written
    os.kill(stop_for_real.last_pid, 9)
    with Jobs(db_path, reaper=False) as after_reboot:
        records = after_reboot.list_status()
        assert records["before-reboot"].status == "failed"
        assert "restarted" in records["before-reboot"].reason
        assert records["dependent"].status == "dependency_failed"
        assert after_reboot.wait("queued-job", 20).status == "finished"
    assert not os.path.exists(os.path.join(db_path, MARKER))


def test_dispatch_is_a_module_others_run(jobs, db_path):
    jobs.set_limit("one", 1)
    jobs.run("sleep 30", "a", group="one")
    jobs.run("true", "b", group="one")
    db = JobDB(db_path)
    db.update_run("b", db.get("b").run_id, "queued", {}, None)  # nothing changes: it waits for a
    assert subprocess.run([sys.executable, "-m", "nodejobs.dispatch", db_path], timeout=60).returncode == 0
    assert db.get("b").status == "queued"
    jobs.stop("a", grace=0.5)
    assert jobs.wait("b", 20).status == "finished"
    result = subprocess.run([sys.executable, "-m", "nodejobs.dispatch"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
