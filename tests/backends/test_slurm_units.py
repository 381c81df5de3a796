"""The Slurm backend's pure helpers, without a cluster: its state mapping, its reading of ``squeue`` and
``sacct`` answers, its batch scripts and ``sbatch`` options, the resource checks, and which queue
features a submission hands over to a backend that has them (``queue.handoff.plan``)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from nodejobs.backends.base import Capabilities, Handle, JobSpec
from nodejobs.backends.fake import FakeBackend
from nodejobs.backends.slurm import cli, script, states
from nodejobs.backends.slurm.backend import SlurmBackend
from nodejobs.backends.supervisor import SUPERVISOR
from nodejobs.model.resources import check_resources
from nodejobs.model.states import JobStatus
from nodejobs.queue import handoff

# -- states ---------------------------------------------------------------------------------------------


def test_which_states_run_and_which_ended():
    assert all(states.is_running(s) for s in ("RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING"))
    assert all(states.is_final(s) for s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"))
    for state in ("PENDING", "REQUEUED", "UNKNOWN"):
        assert not states.is_running(state) and not states.is_final(state)
    assert not states.is_final("RUNNING") and not states.is_running("COMPLETED")


def test_a_completed_job_exited_0_unless_its_code_says_otherwise():
    assert states.end_of("COMPLETED", None) == states.End(0, None)
    assert states.end_of("COMPLETED", 0) == states.End(0, None)


def test_a_failed_job_with_a_code_is_that_code_without_a_reason():
    assert states.end_of("FAILED", 2) == states.End(2, None)
    assert states.end_of("FAILED", None) == states.End(None, "FAILED (Slurm)")


@pytest.mark.parametrize(
    "state, reason, timed_out",
    [
        ("TIMEOUT", "TIMEOUT: Slurm ended it at its time limit", True),
        ("OUT_OF_MEMORY", "OUT_OF_MEMORY: Slurm ended it for exceeding its memory", False),
        ("NODE_FAIL", "NODE_FAIL: its node failed", False),
        ("PREEMPTED", "PREEMPTED: Slurm preempted it", False),
        ("CANCELLED", "CANCELLED by Slurm (scancel, or an administrator)", False),
        ("SPECIAL_EXIT", "SPECIAL_EXIT (Slurm)", False),
    ],
)
def test_ends_that_say_more_than_a_code_keep_slurms_word(state, reason, timed_out):
    end = states.end_of(state, 137)
    assert (end.exit_code, end.reason, end.timed_out) == (137, reason, timed_out)


def test_a_pending_reason_is_slurms_word_once_its_scheduler_looked():
    assert states.pending_reason("Priority") == "Priority"
    assert states.pending_reason("Dependency") == "Dependency"
    assert [states.pending_reason(r) for r in (None, "", "None")] == [None, None, None]


# -- squeue and sacct answers ---------------------------------------------------------------------------

SQUEUE = """\
4242|RUNNING|None
4243|PENDING|Priority
4244_3|PENDING|Resources
4245_[5-9%2]|PENDING|JobArrayTaskLimit
4246|COMPLETING|None
4247||None
squeue: error: something odd
4248|RUNNING
""" + "  4249|CANCELLED|None  \n"  # spaces around a line are not part of it


def test_squeue_rows_by_job_and_array_task():
    wanted = ["4242", "4243", "4244_3", "4245_5", "4245_9", "4245_10", "4246", "4247", "4248", "4249"]
    rows = cli.parse_squeue(SQUEUE, wanted)
    assert rows["4242"] == cli.QueueRow("RUNNING", "None")
    assert rows["4243"] == cli.QueueRow("PENDING", "Priority")
    assert rows["4244_3"] == cli.QueueRow("PENDING", "Resources")
    assert rows["4245_5"] == rows["4245_9"] == cli.QueueRow("PENDING", "JobArrayTaskLimit")
    assert "4245_10" not in rows  # outside the range
    assert rows["4246"].state == "COMPLETING"
    assert rows["4247"].state == "UNKNOWN"  # no state given
    assert "4248" not in rows  # a line of two fields is not a row
    assert rows["4249"] == cli.QueueRow("CANCELLED", "None")


def test_squeue_rows_only_of_the_jobs_asked_about_and_none_from_an_empty_answer():
    assert cli.parse_squeue(SQUEUE, ["4243"]) == {"4243": cli.QueueRow("PENDING", "Priority")}
    assert cli.parse_squeue("", ["4242"]) == {}
    assert cli.parse_squeue("\n\n", ["4242"]) == {}


SACCT = """\
5001|COMPLETED|0:0
5002|FAILED|2:0
5003_1|CANCELLED by 1000|0:15
5003_[2-3,7]|PENDING|0:0
5004|TIMEOUT|0:0
5005|OUT_OF_MEMORY|0:125
5006|NODE_FAIL|1:0
5007||0:0
5008|COMPLETED|weird
sacct: error: odd line
"""


def test_sacct_states_and_exit_codes_in_the_shell_convention():
    wanted = ["5001", "5002", "5003_1", "5003_2", "5003_3", "5003_7", "5003_4", "5004", "5005", "5006",
              "5007", "5008"]  # fmt: skip
    found = cli.parse_sacct(SACCT, wanted)
    assert found["5001"] == ("COMPLETED", 0)
    assert found["5002"] == ("FAILED", 2)
    assert found["5003_1"] == ("CANCELLED", 128 + 15)  # "CANCELLED by UID": the state is its first word
    assert found["5003_2"] == found["5003_3"] == found["5003_7"] == ("PENDING", 0)
    assert "5003_4" not in found
    assert found["5004"] == ("TIMEOUT", 0)
    assert found["5005"] == ("OUT_OF_MEMORY", 128 + 125)
    assert found["5006"] == ("NODE_FAIL", 1)
    assert "5007" not in found  # no state
    assert found["5008"] == ("COMPLETED", None)  # an unreadable exit code


def test_sacct_answers_only_for_the_jobs_asked_about():
    assert cli.parse_sacct(SACCT, ["5002"]) == {"5002": ("FAILED", 2)}
    assert cli.parse_sacct("", ["5002"]) == {}


def test_a_task_range_names_the_tasks_it_covers():
    ids = frozenset({"7_0", "7_1", "7_4", "7_5", "8_1", "7"})
    assert cli.named_ids("7_[0-1,5]", ids) == ["7_0", "7_1", "7_5"]
    assert cli.named_ids("7_[4%1]", ids) == ["7_4"]
    assert cli.named_ids("7", ids) == ["7"]
    assert cli.named_ids("9_1", ids) == []


# -- batch scripts and sbatch options -------------------------------------------------------------------


def _spec(tmp_path, job_id: str = "train", argv: list[str] | None = None, **fields: Any) -> JobSpec:
    base = str(tmp_path / job_id)
    defaults: dict[str, Any] = {
        "run_id": f"run-{job_id}", "argv": argv or ["/bin/sh", "-c", "echo 'a b' \"$HOME\"; exit 3"],
        "env": {"PATH": "/usr/bin:/bin", "NODEJOBS_JOB_ID": job_id}, "cwd": str(tmp_path),
        "out_path": base + "_out.txt", "err_path": base + "_errors.txt", "exit_path": base + ".exit",
    }  # fmt: skip
    return JobSpec(job_id=job_id, **{**defaults, **fields})


def _arguments(shell_text: str, env: dict[str, str] | None = None) -> list[str]:
    """The positional arguments ``shell_text`` leaves set, as /bin/sh reads them."""
    done = subprocess.run(["/bin/sh", "-c", shell_text + '\nprintf "%s\\0" "$@"'], capture_output=True,
                          text=True, check=True, env=env or {})  # fmt: skip
    return done.stdout.split("\0")[:-1]


def test_a_batch_script_runs_the_supervisor_with_the_jobs_arguments_quoted(tmp_path):
    spec = _spec(tmp_path, timeout=90.0, keep_leftovers=True, on_end=["notify", "done"])
    text = script.batch_script(spec, grace=2.5)
    assert text.startswith("#!/bin/sh\n# nodejobs job train (run run-train)")
    with open(SUPERVISOR) as f:
        assert text.endswith(f.read())  # the supervisor's own text is the script's body
    set_line = next(line for line in text.splitlines() if line.startswith("set -- "))
    assert _arguments(set_line) == [
        "train", spec.exit_path, "run-train", "2.5", "1", sys.executable, "90.000",
        "",  # no on_end: what runs on a compute node never touches the database
        spec.exit_path,  # held by its go-file beside the exit file
        "/bin/sh", "-c", "echo 'a b' \"$HOME\"; exit 3",
    ]  # fmt: skip


def test_an_array_script_gives_each_task_its_arguments_environment_and_logs(tmp_path):
    specs = [_spec(tmp_path, f"sweep-{i}", argv=["python", "fit.py", f"--lr=0.{i}"]) for i in range(3)]
    text = script.array_script(specs, grace=3.0)
    head = text[: text.index("exec >>")]  # the task's lines, before its logs are opened
    shown = _arguments(head + 'set -- "$NODEJOBS_JOB_ID" "$nodejobs_out" "$nodejobs_err" "$@"',
                       env={"SLURM_ARRAY_TASK_ID": "1"})  # fmt: skip
    assert shown[:3] == ["sweep-1", specs[1].out_path, specs[1].err_path]
    assert shown[3:6] == ["sweep-1", specs[1].exit_path, "run-sweep-1"]
    assert shown[-3:] == ["python", "fit.py", "--lr=0.1"]
    unknown = subprocess.run(["/bin/sh", "-c", head], env={"SLURM_ARRAY_TASK_ID": "7"}, capture_output=True,
                             text=True)  # fmt: skip
    assert unknown.returncode == 125 and "no task 7 in this array" in unknown.stderr


def test_sbatch_options_name_the_job_its_logs_directory_and_resources(tmp_path):
    spec = _spec(tmp_path, options={"cpus": 4, "mem": "8G", "time": "1:00:00", "partition": "gpu",
                                    "gpus": "a100:2", "slurm_opts": ["--qos=low"]})  # fmt: skip
    args = script.sbatch_args(spec)
    assert args[:4] == ["--job-name=train", "--comment=nodejobs train run run-train",
                        f"--output={spec.out_path}", f"--error={spec.err_path}"]  # fmt: skip
    assert {"--open-mode=append", f"--chdir={tmp_path}", "--export=ALL"} <= set(args)
    resources = {"--cpus-per-task=4", "--mem=8G", "--time=1:00:00", "--partition=gpu", "--gpus=a100:2"}
    assert resources <= set(args)
    assert args[-1] == "--qos=low"  # the user's own options last: they win
    assert not any(a.startswith(("--dependency", "--begin")) for a in args)


def test_dependencies_and_a_start_time_become_afterok_and_begin(tmp_path):
    spec = _spec(tmp_path, options={"after": ["101", "102_3"], "begin": time.time() + 120})
    args = script.shared_args(spec)
    assert "--dependency=afterok:101:102_3" in args
    begin = next(a for a in args if a.startswith("--begin="))
    assert begin.startswith("--begin=now+") and 115 <= int(begin.removeprefix("--begin=now+")) <= 120
    past = script.shared_args(_spec(tmp_path, options={"begin": time.time() - 60}))
    assert "--begin=now+0" in past


def test_array_options_number_the_tasks_and_name_the_sweep(tmp_path):
    specs = [_spec(tmp_path, f"sweep-{i}") for i in range(1, 4)]
    assert script.array_args(specs) == [
        "--array=0-2", "--job-name=sweep", "--comment=nodejobs array of 3: sweep-1 .. sweep-3",
        "--output=/dev/null", "--error=/dev/null",
    ]  # fmt: skip


def test_jobs_alike_but_for_command_id_and_files_share_an_array_key(tmp_path):
    one, two = _spec(tmp_path, "a", argv=["true"]), _spec(tmp_path, "b", argv=["false"])
    assert script.array_key(one) == script.array_key(two)  # NODEJOBS_JOB_ID differs: set per task
    assert script.array_key(one) != script.array_key(_spec(tmp_path, "c", options={"cpus": 2}))
    assert script.array_key(one) != script.array_key(_spec(tmp_path, "d", cwd="/"))
    assert script.array_key(one) != script.array_key(_spec(tmp_path, "e", timeout=5.0))
    other_env = _spec(tmp_path, "f", env={"PATH": "/bin", "NODEJOBS_JOB_ID": "f"})
    assert script.array_key(one) != script.array_key(other_env)


def test_the_slurm_backend_declares_the_files_its_script_keeps():
    assert SlurmBackend.side_suffixes == script.SIDE_SUFFIXES
    assert script.side_files("/logs/x.exit") == ["/logs/x.exit" + s for s in script.SIDE_SUFFIXES]


# -- resources ------------------------------------------------------------------------------------------


def test_good_resources_are_stored_as_given_or_normalised():
    given = {"cpus": 4, "mem": "500m", "time": "2-00:00:00", "gpus": 1, "partition": "gpu",
             "slurm_opts": "--qos=low --exclusive"}  # fmt: skip
    stored = {**given, "gpus": "1", "slurm_opts": ["--qos=low", "--exclusive"]}  # text; options split
    assert check_resources(given) == stored
    assert check_resources({"cpus": None, "mem": "4G"}) == {"mem": "4G"}
    assert check_resources(None) == {}
    for time_limit in ("30", "10:00", "1:00:00", "1-12", "1-12:30", "1-12:30:00"):
        assert check_resources({"time": time_limit}) == {"time": time_limit}
    assert check_resources({"gpus": "a100:2", "slurm_opts": ["--constraint=ib"]}) == {
        "gpus": "a100:2", "slurm_opts": ["--constraint=ib"]}  # fmt: skip


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("cpus", 0, "cpus must be a whole number >= 1, not 0"),
        ("cpus", True, "cpus must be a whole number >= 1, not True"),
        ("cpus", "4", "cpus must be a whole number >= 1, not '4'"),
        ("cpus", 1.5, "cpus must be a whole number >= 1, not 1.5"),
        ("mem", "4 GB", "mem must be like '4G' or '500M', not '4 GB'"),
        ("time", "1h", "time must be like '30' (minutes) or '1:00:00' or '2-00:00:00', not '1h'"),
        ("gpus", True, "gpus must be like 1 or 'a100:2', not True"),
        ("partition", "a b", "partition must be like 'gpu', not 'a b'"),
        ("slurm_opts", "qos=low", "slurm_opts must be sbatch options such as '--qos=low', not 'qos=low'"),
        ("bogus", 1, "unknown resource 'bogus'; one of: cpus, mem, time, gpus, partition, slurm_opts"),
        ("bogus", None, "unknown resource 'bogus'; one of: cpus, mem, time, gpus, partition, slurm_opts"),
    ],
)
def test_bad_resources_are_refused_with_what_is_expected(key, value, message):
    with pytest.raises(ValueError) as refused:
        check_resources({key: value})
    assert str(refused.value) == message


# -- handoff.plan ---------------------------------------------------------------------------------------


class SchedulingBackend(FakeBackend):
    """A fake backend that runs jobs after others, and at a given time, itself (as Slurm does)."""

    name = "sched"
    capabilities = Capabilities(dependencies=True, delayed_start=True)

    def dependency_ref(self, handle: Handle) -> str | None:
        return handle["ref"]


@dataclass
class Record:
    status: str
    backend: str
    ref: str


class Recorded:
    """The records ``plan`` reads (as ``JobDB.get``), up to date (as ``Lifecycle.refresh``), and
    their handles (as ``Lifecycle.handle``)."""

    def __init__(self, **records: Record) -> None:
        self.records = records

    def get(self, job_id: str) -> Record | None:
        return self.records.get(job_id)

    def refresh(self, record: Record | None) -> Record | None:
        return record

    def handle(self, record: Record) -> Handle:
        return {"ref": record.ref}


S = JobStatus
RECORDS = Recorded(
    done=Record(S.c_finished, "sched", "11"), waiting=Record(S.c_pending, "sched", "12"),
    running=Record(S.c_running, "sched", "13"), elsewhere=Record(S.c_running, "local", "14"),
    queued=Record(S.c_queued, "sched", "15"),
)  # fmt: skip


def _plan(backend: FakeBackend, deps: list[str], start_at: datetime | None = None, limited: bool = False):
    records: Any = RECORDS  # stands for both the JobDB and the Lifecycle
    return handoff.plan(records, records, backend, deps, start_at, limited)


def test_without_dependencies_a_job_is_not_queued():
    assert _plan(SchedulingBackend(), []) == (False, {})


def test_a_job_of_a_limited_group_waits_in_nodejobs_queue():
    assert _plan(SchedulingBackend(), ["running"], limited=True) == (True, {})


def test_a_finished_dependency_is_dropped_and_active_ones_are_handed_over_as_refs():
    assert _plan(SchedulingBackend(), ["done"]) == (False, {})
    assert _plan(SchedulingBackend(), ["done", "waiting", "running"]) == (False, {"after": ["12", "13"]})


def test_a_dependency_on_another_backend_or_not_yet_submitted_waits_in_nodejobs_queue():
    assert _plan(SchedulingBackend(), ["running", "elsewhere"]) == (True, {})
    assert _plan(SchedulingBackend(), ["queued"]) == (True, {})


def test_a_start_time_is_handed_over_as_begin():
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert _plan(SchedulingBackend(), [], start_at=at) == (False, {"begin": at.timestamp()})


def test_a_backend_without_the_features_leaves_them_to_nodejobs_queue():
    at = datetime(2030, 1, 2, tzinfo=timezone.utc)
    assert _plan(FakeBackend(), ["running"]) == (True, {})
    assert _plan(FakeBackend(), [], start_at=at) == (True, {})
    assert _plan(FakeBackend(), []) == (False, {})


def test_an_unknown_dependency_is_refused():
    with pytest.raises(ValueError, match="unknown dependency 'nope'"):
        _plan(SchedulingBackend(), ["nope"])

