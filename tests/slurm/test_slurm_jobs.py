"""The API on the Slurm test cluster: statuses, exit codes, logs, reasons, stop, dependencies, start
times, group limits, resources, refusals — the same records as on the local backend."""

from __future__ import annotations

import os
import subprocess

import pytest
from polling import wait_until
from slurm_cluster import gate

from nodejobs.backends.slurm import cli as slurm_cli

pytestmark = pytest.mark.slurm
LONG = 90  # seconds: Slurm schedules in passes a few seconds apart, slower with both cores busy


def status(jobs, job_id):
    return jobs.get_status(job_id).status


def squeue_state(slurm_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "--states=all", "-j", slurm_id, "-o", "%T"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    return out.stdout.strip()


def slurm_id(jobs, job_id) -> str:
    return jobs.lifecycle.handle(jobs.get_status(job_id))["slurm"]


def test_pending_then_running_then_finished_or_failed_with_exit_codes_and_logs(sjobs, tmp_path):
    go = tmp_path / "go"
    ok = sjobs.run(f"{gate(go)}; echo out; echo err >&2", "ok")
    bad = sjobs.run("echo failing; exit 3", "bad")
    assert ok.status == "pending" and ok.backend == "slurm" and bad.status in ("pending", "running", "failed")
    wait_until(lambda: status(sjobs, "ok") == "running", LONG, message="ok to run")
    running = sjobs.get_status("ok")
    assert running.reason is None and running.started_at >= running.submitted_at
    go.touch()
    done = sjobs.wait("ok", LONG)
    assert (done.status, done.exit_code) == ("finished", 0)
    assert sjobs.job_logs("ok") == ("out\n", "err\n")
    failed = sjobs.wait("bad", LONG)
    assert (failed.status, failed.exit_code) == ("failed", 3)
    assert sjobs.tail("bad") == "failing\n"
    frame = sjobs.list_status().to_dataframe()
    assert frame.loc["ok", "status"] == "finished" and frame.loc["bad", "exit_code"] == 3


def test_a_job_waiting_for_the_node_shows_slurms_pending_reason(sjobs, tmp_path):
    go = tmp_path / "go"
    sjobs.run(gate(go), "hog", cpus=2)
    sjobs.run("true", "next", cpus=2)
    wait_until(lambda: status(sjobs, "hog") == "running", LONG, message="the hog to run")
    reason = wait_until(lambda: (r := sjobs.get_status("next").reason) in ("Resources", "Priority") and r,
                        LONG, interval=0.2, message="Slurm's pending reason")  # fmt: skip
    assert status(sjobs, "next") == "pending" and reason
    go.touch()
    assert sjobs.wait("next", LONG).status == "finished"


def test_stop_of_a_running_and_of_a_pending_job(sjobs, tmp_path):
    sjobs.run(f"{gate(tmp_path / 'never')}", "runs", cpus=2)
    sjobs.run("echo never", "waits", cpus=2)
    wait_until(lambda: status(sjobs, "runs") == "running", LONG, message="it to run")
    pending_id = slurm_id(sjobs, "waits")
    stopped = sjobs.stop("waits")
    assert stopped.status == "stopped" and stopped.exit_code is None
    assert squeue_state(pending_id) in ("", "CANCELLED")  # out of Slurm's queue
    ended = sjobs.stop("runs", grace=5.0)
    assert (ended.status, ended.exit_code) == ("stopped", 143)
    assert sjobs.job_logs("waits") == ("", "")


def test_stop_forces_a_job_that_ignores_sigterm_after_the_grace(sjobs):
    sjobs.run("trap '' TERM; echo ready; sleep 300", "stubborn")
    wait_until(lambda: sjobs.tail("stubborn") == "ready\n", LONG, message="the trap to be set")
    ended = sjobs.stop("stubborn", grace=0.5)
    assert (ended.status, ended.exit_code) == ("stopped", 137)


def test_a_failed_dependency_does_not_leave_its_dependent_pending(sjobs, tmp_path):
    go = tmp_path / "go"
    sjobs.run(f"{gate(go)}; exit 1", "parent")
    child = sjobs.run("echo child", "child", after="parent")
    assert child.status == "pending"  # handed to Slurm as afterok
    go.touch()
    assert sjobs.wait("parent", LONG).status == "failed"
    ended = sjobs.wait("child", LONG)
    assert ended.status == "dependency_failed" and "parent" in ended.reason
    assert squeue_state(slurm_id(sjobs, "child")) in ("", "CANCELLED")
    assert sjobs.job_logs("child")[0] == ""


def test_a_dependency_that_finished_or_failed_is_decided_from_our_records(sjobs):
    assert sjobs.wait(sjobs.run("true", "done").self_id, LONG).status == "finished"
    assert sjobs.wait(sjobs.run("exit 2", "broke").self_id, LONG).status == "failed"
    after_done = sjobs.run("echo ran", "after-done", after="done")
    assert sjobs.wait("after-done", LONG).status == "finished" and after_done.after_ids == ["done"]
    after_broke = sjobs.run("echo ran", "after-broke", after="broke")
    assert after_broke.status == "dependency_failed" and sjobs.job_logs("after-broke")[0] == ""


def test_a_delayed_start_waits_in_slurm_with_reason_begintime(sjobs):
    sjobs.run("echo late", "late", at=30)
    reason = wait_until(lambda: sjobs.get_status("late").reason == "BeginTime", LONG, interval=0.2,
                        message="Slurm's BeginTime reason")  # fmt: skip
    assert reason and status(sjobs, "late") == "pending"


def test_a_group_limit_is_kept_by_our_queue_on_the_submitting_side(sjobs, tmp_path):
    sjobs.set_limit("sweep", 1)
    for i in range(3):
        sjobs.run(f"{gate(tmp_path / str(i))}; echo {i}", f"s{i}", group="sweep")
    assert [status(sjobs, f"s{i}") for i in (1, 2)] == ["queued", "queued"]
    for i in range(3):
        (tmp_path / str(i)).touch()
        assert sjobs.wait(f"s{i}", LONG).status == "finished"
        later = [status(sjobs, f"s{j}") for j in range(i + 1, 3)]
        assert later.count("queued") >= len(later) - 1  # never two of the group at once
    records = [sjobs.get_status(f"s{i}") for i in range(3)]
    assert all(r.slot == 0 for r in records)
    assert records[0].ended_at <= records[1].started_at and records[1].ended_at <= records[2].started_at


def test_resources_reach_slurm_and_a_rerun_keeps_them(sjobs):
    record = sjobs.run("echo $SLURM_CPUS_PER_TASK $SLURM_JOB_NAME", "res", cpus=2, mem="100M", time="5")
    assert sjobs.wait("res", LONG).status == "finished"
    assert sjobs.job_logs("res")[0] == "2 res\n"
    assert record.resources == '{"cpus": 2, "mem": "100M", "time": "5"}'
    again = sjobs.rerun("res")
    assert again.resources == record.resources
    assert sjobs.wait("res", LONG).status == "finished" and sjobs.job_logs("res")[0] == "2 res\n"


@pytest.mark.parametrize(("resources", "words"), [
    ({"partition": "nope"}, "invalid partition"),
    ({"mem": "900T"}, "Memory specification"),
])  # fmt: skip
def test_a_job_slurm_refuses_fails_to_start_with_slurms_message(sjobs, resources, words):
    record = sjobs.run("true", "refused", **resources)
    assert record.status == "failed_start" and words in record.reason and "Slurm refused" in record.reason


def test_bad_resources_are_refused_before_anything_is_recorded(sjobs, jobs):
    with pytest.raises(ValueError, match="cpus must be"):
        sjobs.run("true", "x", cpus=0)
    with pytest.raises(ValueError, match="unknown resource"):
        sjobs.run("true", "x", cores=2)
    with pytest.raises(ValueError, match="local backend takes no resources"):
        jobs.run("true", "x", mem="1G")
    assert sjobs.get_status("x") is None and jobs.get_status("x") is None


def test_our_time_limit_ends_a_slurm_job_as_timed_out(sjobs):
    record = sjobs.wait(sjobs.run("sleep 300", "slow", timeout=1).self_id, LONG)
    assert record.status == "timed_out" and record.exit_code == 143


def test_observing_many_jobs_asks_squeue_at_most_once_per_interval(sjobs, tmp_path):
    go = tmp_path / "go"
    ids = [sjobs.run(gate(go), f"w{i}").self_id for i in range(12)]
    before = slurm_cli.calls.total("squeue")
    for _ in range(200):  # a dashboard and a wait, refreshing as fast as they can
        sjobs.list_status()
        sjobs.get_status(ids[0])
    assert slurm_cli.calls.total("squeue") - before <= 1
    go.touch()
    sjobs.wait_all(ids, LONG)


def test_a_sweep_is_one_array_submission_with_each_jobs_own_record_logs_and_exit_code(sjobs, tmp_path):
    before = slurm_cli.calls.total("sbatch")
    go = tmp_path / "go"
    sweep = sjobs.map(f"{gate(go)}; echo n={{n}}; exit {{code}}", [{"n": i, "code": i % 3} for i in range(6)],
                      prefix="arr", cpus=1)  # fmt: skip
    assert slurm_cli.calls.total("sbatch") - before == 1  # one controller call for the whole sweep
    assert {r.status for r in sweep.values()} == {"pending"} and sweep["arr-n1-code1"].tag_values["n"] == 1
    tasks = [sjobs.lifecycle.handle(r)["slurm"] for r in sweep.values()]
    assert len({t.split("_")[0] for t in tasks}) == 1 and [t.split("_")[1] for t in tasks] == list("012345")
    stopped = sjobs.stop("arr-n5-code2")  # one task of the array, still waiting for the gate or a CPU
    assert stopped.status == "stopped"
    go.touch()
    done = sjobs.wait_all([i for i in sweep if i != "arr-n5-code2"], LONG)
    assert {i: (r.status, r.exit_code) for i, r in done.items()} == {
        "arr-n0-code0": ("finished", 0), "arr-n1-code1": ("failed", 1), "arr-n2-code2": ("failed", 2),
        "arr-n3-code0": ("finished", 0), "arr-n4-code1": ("failed", 1)}  # fmt: skip
    assert [sjobs.job_logs(i)[0] for i in done] == [f"n={i}\n" for i in range(5)]
    assert sjobs.rerun("arr-n1-code1").status == "pending"  # a task reruns as a job of its own
    assert (sjobs.wait("arr-n1-code1", LONG).exit_code, sjobs.job_logs("arr-n1-code1")[0]) == (1, "n=1\n")


def test_rm_removes_a_slurm_jobs_script_go_file_and_marks(sjobs):
    from nodejobs.backends.slurm.backend import SlurmBackend
    from nodejobs.backends.slurm.script import SIDE_SUFFIXES

    assert set(SIDE_SUFFIXES) <= set(SlurmBackend.side_suffixes)
    sjobs.wait(sjobs.run("echo x", "tidy").self_id, LONG)
    logs = sjobs.jobdb.logdir
    assert {"tidy.exit.sbatch", "tidy.exit.go", "tidy.exit.started"} <= set(os.listdir(logs))
    sjobs.remove("tidy")
    assert [name for name in os.listdir(logs) if name.startswith("tidy")] == []
