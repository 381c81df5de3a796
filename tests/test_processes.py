"""Process control: the launcher dies, stop kills whole trees, pid reuse, the reaper, shared databases."""

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from conftest import pid_alive, wait_until
from nodejobs import JobDB, Jobs, Processes

PY = sys.executable


def gated(go, then: str) -> str:
    """A shell command that waits until the file ``go`` exists, then runs ``then``.

    Tests running gated jobs take the ``jobs`` fixture on the same database: if they fail before
    opening the gate, its teardown stops the waiting jobs.
    """
    return f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.01; done; {then}"


def start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


def pending_signals(pid: int) -> tuple[int, int]:
    """The (thread, process) pending-signal masks of ``pid`` from /proc."""
    masks = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("SigPnd", "ShdPnd"):
                masks[key] = int(value.strip(), 16)
    return masks["SigPnd"], masks["ShdPnd"]


def this_boot() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def pids_in(text: str) -> list[int]:
    return [int(word) for word in text.split()]


LAUNCHER = textwrap.dedent(
    """
    import os, sys
    from nodejobs import Jobs
    db, gate = sys.argv[1], sys.argv[2]
    jobs = Jobs(db)
    jobs.run(gate + "echo done; exit 0", "ok")
    jobs.run(gate + "echo bad >&2; exit 3", "bad")
    jobs.run(gate + "kill -KILL $$", "killed")
    jobs.run(["sleep", "60"], "stop-me")
    print(" ".join(r.status for r in jobs.list_status().values()), flush=True)
    os._exit(0)  # no clean-up, no reaper, no atexit: like a kernel that was killed
    """
)


def test_a_fresh_jobs_reports_the_true_end_after_the_launcher_died(db_path, tmp_path, jobs):
    go = tmp_path / "go"
    gate = gated(go, "")
    launcher = subprocess.run([PY, "-c", LAUNCHER, db_path, gate], capture_output=True, text=True, timeout=60)
    assert launcher.returncode == 0, launcher.stderr
    assert launcher.stdout.split() == ["running"] * 4
    db = JobDB(db_path)
    try:
        assert {r.status for r in db.list_status().values()} == {"running"}  # nobody folded anything
    finally:
        db.close()
    go.touch()  # the jobs end only now, with their launcher long gone
    with Jobs(db_path) as fresh:
        assert fresh.wait("ok", timeout=30).status == "finished"
        results = {job_id: fresh.wait(job_id, timeout=30) for job_id in ("ok", "bad", "killed")}
        assert {k: (r.status, r.exit_code) for k, r in results.items()} == {
            "ok": ("finished", 0),
            "bad": ("failed", 3),
            "killed": ("failed", 137),
        }
        assert all(r.ended_at >= r.started_at for r in results.values())
        assert fresh.job_logs("ok") == ("done\n", "")
        assert fresh.job_logs("bad") == ("", "bad\n")
        stopped = fresh.stop("stop-me", grace=5)
        assert (stopped.status, stopped.exit_code) == ("stopped", 143)


def test_a_job_launched_by_a_dead_process_is_folded_by_any_listing(db_path, tmp_path, jobs):
    go = tmp_path / "go"
    script = LAUNCHER.replace('jobs.run(["sleep", "60"], "stop-me")', "")
    subprocess.run([PY, "-c", script, db_path, gated(go, "")], check=True, capture_output=True, timeout=60)
    go.touch()
    with Jobs(db_path, reaper=False) as fresh:
        wait_until(lambda: all(not r.is_active for r in fresh.list_status().values()), message="jobs to end")
        assert {k: r.exit_code for k, r in fresh.list_status().items()} == {"ok": 0, "bad": 3, "killed": 137}


TREE = textwrap.dedent(
    """
    sleep 60 & echo $!
    sh -c 'sleep 60 & echo $!; wait' & echo $!
    sh -c 'setsid sleep 60 & echo $!; wait' & echo $!
    wait
    """
)


def test_stop_leaves_no_process_of_the_tree_alive(jobs):
    rec = jobs.run(TREE, "tree")
    out = wait_until(lambda: len(pids_in(jobs.job_logs("tree")[0])) == 5 and jobs.job_logs("tree")[0])
    pids = [*pids_in(out), rec.last_pid, rec.supervisor_pid]

    def session_leaders():
        return [p for p in pids if pid_alive(p) and os.getsid(p) == p]

    # The supervisor leads the job's session; the setsid grandchild leaves it for one of its own.
    wait_until(lambda: len(session_leaders()) == 2, message="the grandchild to call setsid")
    final = jobs.stop("tree", grace=5)
    assert final.status == "stopped"
    alive = [p for p in pids if pid_alive(p)]
    assert alive == [], f"still alive after stop: {alive}"


def test_stop_kills_children_that_ignore_sigterm_after_the_grace(jobs):
    script = "sh -c 'trap \"\" TERM; echo $$; exec sleep 60' & wait"
    jobs.run(script, "stubborn")
    out = wait_until(lambda: jobs.job_logs("stubborn")[0])
    (child,) = pids_in(out)
    final = jobs.stop("stubborn", grace=0.3)
    assert (final.status, final.exit_code) == ("stopped", 143)  # the payload itself obeyed SIGTERM
    assert not pid_alive(child)


def test_stop_escalates_to_sigkill_when_the_job_ignores_sigterm(jobs):
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    rec = jobs.run([PY, "-c", code], "deaf")
    wait_until(lambda: jobs.job_logs("deaf")[0] == "ready\n", message="job ready")
    started = time.monotonic()
    final = jobs.stop("deaf", grace=0.3)
    assert time.monotonic() - started >= 0.3  # it was given the grace period first
    assert (final.status, final.exit_code) == ("stopped", 137)
    assert not pid_alive(rec.last_pid)


@pytest.fixture
def victim():
    """An unrelated process (its own session) that blocks SIGTERM/INT/HUP, so a stray signal stays pending."""
    code = (
        "import signal, sys, time\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline() == "ready\n"
    yield proc
    proc.kill()
    proc.wait()


def test_a_reused_pid_is_never_signalled(jobs, victim):
    pid, boot = victim.pid, this_boot()
    right = start_ticks(pid)
    db = jobs.jobdb
    for job_id, ident in {
        "reused": dict(boot_id=boot, supervisor_start=right + 1, pid_start=right + 1),
        "old-boot": dict(boot_id="another-boot", supervisor_start=right, pid_start=right),
    }.items():
        db.update_status(
            {"self_id": job_id, "status": "running", "command": "x", "supervisor_pid": pid, "last_pid": pid}
            | ident
        )
    assert jobs.processes.find("reused") is None
    stopped = jobs.stop("reused", grace=0.2)
    assert stopped.status == "failed" and stopped.ended_at is not None
    assert "without recording an exit code" in stopped.reason
    listed = jobs.list_status()["old-boot"]
    assert listed.status == "failed" and listed.reason
    assert jobs.stop("old-boot", grace=0.2).status == "failed"
    assert victim.poll() is None and pending_signals(pid) == (0, 0)


def test_reaper_reaps_and_records_ends_without_being_asked(jobs, tmp_path):
    go = tmp_path / "go"
    records = [jobs.run(gated(go, f"exit {i}"), f"r{i}") for i in range(3)]
    assert all(r.status == "running" for r in records)
    go.touch()
    for r in records:  # JobDB.get only reads: any change comes from the reaper thread
        wait_until(lambda r=r: not jobs.jobdb.get(r.self_id).is_active, message=f"{r.self_id} recorded")
    assert [jobs.jobdb.get(f"r{i}").exit_code for i in range(3)] == [0, 1, 2]
    for r in records:  # reaped by the reaper thread: no zombie is left behind
        wait_until(lambda r=r: not os.path.exists(f"/proc/{r.supervisor_pid}"), message="the reap")


def test_close_stops_the_reaper_thread(db_path):
    processes = Processes(JobDB(db_path))
    assert processes.reaper.alive
    processes.close()
    assert not processes.reaper.alive
    processes.close()  # twice is fine
    processes.job_db.close()


def test_refresh_of_a_stale_snapshot_respects_a_stop_that_began_meanwhile(db_path, tmp_path, jobs):
    go = tmp_path / "go"
    with Jobs(db_path, reaper=False) as quiet:
        rec = quiet.run(gated(go, "exit 5"), "raced")
        stale = quiet.jobdb.get("raced")
        assert quiet.jobdb.update_run("raced", rec.run_id, "running", {}, "stopping")
        go.touch()
        exit_file = quiet.jobdb.exit_path(rec)
        wait_until(lambda: os.path.exists(exit_file) and os.path.getsize(exit_file), message="exit file")
        final = quiet.processes.refresh(stale)
        assert (final.status, final.exit_code) == ("stopped", 5)


def test_processes_run_with_custom_logdir_and_logfile(db_path, tmp_path):
    db = JobDB(db_path)
    processes = Processes(db)
    try:
        logdir = tmp_path / "not-yet"
        processes.run(["echo", "hi"], "custom", logdir=str(logdir), logfile="named")
        rec = processes.refresh(db.get("custom"))
        while rec.is_active:
            processes.wait(rec, 30)
            rec = processes.refresh(db.get("custom"))
        assert rec.status == "finished"
        assert (logdir / "named_out.txt").read_text() == "hi\n"
        assert db.job_logs("custom") == ("hi\n", "")
    finally:
        processes.close()
        db.close()


def test_run_status_and_wait_never_scan_every_process(jobs, tmp_path, monkeypatch):
    real_listdir = os.listdir

    def listdir(path="."):
        if os.fsdecode(path).rstrip("/") == "/proc":
            raise AssertionError("listed every process on the machine")
        return real_listdir(path)

    def forbidden(*args, **kwargs):
        raise AssertionError("scanned every process on the machine")

    go = tmp_path / "go"
    with monkeypatch.context() as m:
        m.setattr(os, "listdir", listdir)
        m.setattr(psutil, "process_iter", forbidden)
        m.setattr(psutil, "pids", forbidden)
        jobs.run(gated(go, "exit 0"), "a")
        jobs.run(["sleep", "30"], "b")
        assert {r.status for r in jobs.list_status().values()} == {"running"}
        go.touch()
        assert jobs.wait("a", timeout=30).status == "finished"
        assert jobs.get_status("b").status == "running"
    assert jobs.stop("b").status == "stopped"  # walking the job's tree may read /proc


def test_supervision_costs_a_small_shell_not_a_python_process(jobs):
    rec = jobs.run(["sleep", "30"], "cheap")
    supervisor = psutil.Process(rec.supervisor_pid)
    assert supervisor.exe() == os.path.realpath("/bin/sh")
    assert supervisor.cmdline()[0] == "nodejobs-supervisor"  # what ps shows: not an inline script
    assert supervisor.cmdline()[1].endswith("nodejobs-supervisor") and supervisor.cmdline()[2] == "cheap"
    assert psutil.Process(rec.last_pid).ppid() == rec.supervisor_pid  # nothing else in between
    # Upstream keeps a 14 MB Python wrapper per job; the aim is at most a fifth of that.
    assert supervisor.memory_full_info().pss < 14e6 / 5


def test_find_and_list_return_running_payloads(jobs):
    rec = jobs.run(["sleep", "30"], "found")
    proc = jobs.processes.find("found")
    assert proc.pid == rec.last_pid and proc.job_id == "found"
    assert [p.job_id for p in jobs.processes.list()] == ["found"]
    jobs.stop("found")
    assert jobs.processes.find("found") is None and jobs.processes.list() == []
    assert jobs.processes.find("nobody") is None


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from nodejobs import Jobs
    db, tag, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(go):
        time.sleep(0.002)
    seen = 0
    with Jobs(db, startup_window=0.0) as jobs:
        for i in range(n):
            jobs.run(["true"], f"{tag}-{i}")
            jobs.run("true")  # a generated id, racing the other processes for the same name
            listing = jobs.list_status()
            assert f"{tag}-{i}" in listing
            seen = max(seen, len(listing))
            jobs.get_status(f"{tag}-{i}")
        for i in range(n):
            jobs.wait(f"{tag}-{i}", timeout=60)
    print(json.dumps({"seen": seen}))
    """
)


def test_four_processes_share_one_database(db_path, tmp_path):
    go, n = tmp_path / "go", 12
    workers = [
        subprocess.Popen(
            [PY, "-c", WORKER, db_path, f"w{k}", str(n), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    try:
        go.touch()
        results = [w.communicate(timeout=90) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (out, err) in zip(workers, results):
        assert w.returncode == 0, err
        assert "locked" not in err
        assert json.loads(out)["seen"] >= n
    with Jobs(db_path) as jobs:
        records = jobs.list_status()
        for record in records.values():
            if record.is_active:
                jobs.wait(record.self_id, timeout=30)
        records = jobs.list_status()
    named = [k for k in records if k.startswith("w")]
    generated = [k for k in records if k.startswith("true-")]
    assert len(named) == 4 * n and len(generated) == 4 * n, sorted(records)
    assert {r.status for r in records.values()} == {"finished"}


def test_signal_numbers_in_exit_codes_follow_the_shell_convention(jobs):
    rec = jobs.run(["sleep", "30"], "sig")
    os.kill(rec.last_pid, signal.SIGINT)
    final = jobs.wait("sig", timeout=30)
    assert (final.status, final.exit_code) == ("failed", 128 + signal.SIGINT)
