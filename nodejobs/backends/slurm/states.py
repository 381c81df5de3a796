"""Slurm's job states and reasons, in nodejobs' terms: which run, which ended, and how an end reads."""

from __future__ import annotations

from dataclasses import dataclass

RUNNING_STATES = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING",
                            "STAGE_OUT", "RESIZING"})  # fmt: skip
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                          "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})  # fmt: skip
# Ends that say more than an exit code: kept in the record's reason under their Slurm name.
EXPLAINED = {
    "TIMEOUT": "TIMEOUT: Slurm ended it at its time limit",
    "OUT_OF_MEMORY": "OUT_OF_MEMORY: Slurm ended it for exceeding its memory",
    "NODE_FAIL": "NODE_FAIL: its node failed",
    "PREEMPTED": "PREEMPTED: Slurm preempted it",
    "BOOT_FAIL": "BOOT_FAIL: its node did not boot",
    "DEADLINE": "DEADLINE: Slurm ended it at its deadline",
    "CANCELLED": "CANCELLED by Slurm (scancel, or an administrator)",
}


@dataclass(frozen=True)
class End:
    """How a job Slurm says ended reads in nodejobs' terms."""

    exit_code: int | None
    reason: str | None
    timed_out: bool = False


def is_running(state: str) -> bool:
    return state in RUNNING_STATES


def is_final(state: str) -> bool:
    return state in FINAL_STATES


def end_of(state: str, exit_code: int | None) -> End:
    """The end of a job Slurm reports as ``state`` (``exit_code``: the code, if anything knows it).
    COMPLETED is exit code 0; other codes are only trusted from the job itself or accounting."""
    if state == "COMPLETED" and exit_code is None:
        exit_code = 0
    if state == "COMPLETED" or (state == "FAILED" and exit_code is not None):
        return End(exit_code, None)
    return End(exit_code, EXPLAINED.get(state, f"{state} (Slurm)"), timed_out=state == "TIMEOUT")


def pending_reason(reason: str | None) -> str | None:
    """A pending job's reason as shown: Slurm's own word ("Priority", "Resources", "Dependency", ...);
    None until Slurm's scheduler has looked at the job."""
    return None if not reason or reason == "None" else reason
