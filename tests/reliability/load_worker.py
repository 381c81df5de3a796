"""One load-test process: runs, lists, stops, follows and reads jobs in a shared database for a while.

Usage: ``python load_worker.py DB WORKER SECONDS RESULT.json``. Every job it starts is of one of three
kinds whose final state is known in advance: ``quick`` (prints, exits 0 -> finished), ``fail`` (prints
to stderr, exits 3 -> failed) and ``long`` (sleeps until someone stops it -> stopped). Any exception,
and any answer that contradicts what is known, is recorded as an error in the result file.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from collections import Counter

from nodejobs import JobExistsError, Jobs

ACTIVE = {"starting", "running", "stopping"}
ENDED = {"stopped", "finished", "failed", "failed_start", "failed_stop"}
MAX_LONG_PER_WORKER = 3
# A job that fails within the start-up window is failed_start; later, failed. Both keep its exit code.
EXPECTED_STATUS = {
    "quick": {"finished"},
    "quick-follow": {"finished"},
    "fail": {"failed", "failed_start"},
    "long": {"stopped"},
}


def command_for(kind: str, job_id: str) -> str | list[str]:
    if kind == "quick":
        return f"echo hello-{job_id}" if random.random() < 0.5 else ["/bin/echo", f"hello-{job_id}"]
    if kind == "fail":
        return f"echo oops-{job_id} >&2; exit 3"
    return ["sleep", "60"]


class Worker:
    def __init__(self, db: str, worker: int) -> None:
        self.jobs = Jobs(db, grace=2.0)
        self.worker = worker
        self.created: dict[str, str] = {}  # id -> kind
        self.ops: Counter = Counter()
        self.errors: list[str] = []
        self.serial = 0

    def error(self, text: str) -> None:
        self.errors.append(f"worker {self.worker}: {text}")

    def run(self, kind: str) -> None:
        self.serial += 1
        job_id = f"w{self.worker}-{kind}-{self.serial}"
        record = self.jobs.run(command_for(kind, job_id), job_id)
        self.created[job_id] = kind
        self.ops["run"] += 1
        allowed = {"running", *EXPECTED_STATUS[kind]} | ({"stopping"} if kind == "long" else set())
        if (
            record.self_id != job_id or record.status not in allowed
        ):  # long jobs: others may stop them at once
            self.error(f"run {job_id} gave {dict(record)}")

    def own_long_active(self) -> list[str]:
        return [i for i, k in self.created.items() if k == "long" and self.jobs.get_status(i).is_active]

    def stop_someones_long_job(self) -> None:
        listing = self.jobs.list_status({"status": "running"})
        self.ops["list_filtered"] += 1
        bad = [i for i, r in listing.items() if r.status != "running"]
        if bad:
            self.error(f"status filter returned other statuses: {bad}")
        candidates = [i for i in listing if "-long-" in i]
        if not candidates:
            return
        job_id = random.choice(candidates)
        record = self.jobs.stop(job_id, grace=2.0)
        self.ops["stop"] += 1
        if record is None or record.status != "stopped":
            self.error(f"stop {job_id} gave {record and dict(record)}")

    def list_all(self) -> None:
        listing = self.jobs.list_status()
        self.ops["list"] += 1
        mine = {i for i in listing if i.startswith(f"w{self.worker}-")}
        lost = set(self.created) - mine
        if lost:
            self.error(f"own jobs missing from the listing: {sorted(lost)}")
        for job_id, record in listing.items():
            if record.status not in ACTIVE | ENDED:
                self.error(f"{job_id} has status {record.status!r}")
            kind = self.created.get(job_id)
            if kind and not record.is_active and record.status not in EXPECTED_STATUS[kind]:
                self.error(f"{job_id} ({kind}) ended as {record.status}: {dict(record)}")

    def read_logs(self) -> None:
        ended = [i for i, k in self.created.items() if k in ("quick", "fail")]
        if not ended:
            return
        job_id = random.choice(ended)
        record = self.jobs.wait(job_id, timeout=30)
        kind = self.created[job_id]
        out, err = self.jobs.job_logs(job_id)
        self.ops["logs"] += 1
        expected = (f"hello-{job_id}\n", "") if kind == "quick" else ("", f"oops-{job_id}\n")
        if (out, err) != expected or record.status not in EXPECTED_STATUS[kind]:
            self.error(f"{job_id}: logs {(out, err)!r} status {record.status}")
        tail = self.jobs.tail(job_id, 5, "out" if kind == "quick" else "err")
        self.ops["tail"] += 1
        if tail != expected[0 if kind == "quick" else 1]:
            self.error(f"{job_id}: tail {tail!r}")

    def follow(self) -> None:
        job_id = f"w{self.worker}-quick-follow-{self.serial}"
        self.serial += 1
        self.jobs.run(f"echo a; echo b-{job_id}", job_id)
        self.created[job_id] = "quick-follow"
        self.ops["run"] += 1
        text = "".join(self.jobs.follow(job_id))
        self.ops["follow"] += 1
        if text != f"a\nb-{job_id}\n":
            self.error(f"follow {job_id} gave {text!r}")

    def contend(self) -> None:
        """Try to start an id other workers use too: it either starts or is refused, nothing else."""
        job_id = f"shared-{random.randrange(3)}"
        try:
            record = self.jobs.run(["sleep", "0.2"], job_id)
        except JobExistsError:
            self.ops["contend_refused"] += 1
            return
        self.ops["contend_started"] += 1
        if record.status not in ("running", "finished"):
            self.error(f"contended {job_id} gave {dict(record)}")

    def step(self) -> None:
        roll = random.random()
        if roll < 0.25:
            self.run("quick")
        elif roll < 0.35:
            self.run("fail")
        elif roll < 0.45:
            if len(self.own_long_active()) < MAX_LONG_PER_WORKER:
                self.run("long")
            else:
                self.stop_someones_long_job()
        elif roll < 0.55:
            self.stop_someones_long_job()
        elif roll < 0.70:
            self.list_all()
        elif roll < 0.85:
            self.read_logs()
        elif roll < 0.92:
            self.follow()
        elif roll < 0.97:
            self.contend()
        else:
            self.jobs.get_status(random.choice(list(self.created) or ["nothing"]))
            self.ops["get_status"] += 1

    def finish(self) -> None:
        for job_id in self.own_long_active():
            record = self.jobs.stop(job_id, grace=2.0)
            self.ops["stop"] += 1
            if record.status != "stopped":
                self.error(f"final stop {job_id} gave {dict(record)}")
        for job_id, kind in self.created.items():
            if kind != "long":
                self.jobs.wait(job_id, timeout=30)


def main() -> None:
    db, worker, seconds, result = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    random.seed(worker)
    w = Worker(db, worker)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            w.step()
        except Exception:
            w.error(traceback.format_exc())
    try:
        w.finish()
    except Exception:
        w.error(traceback.format_exc())
    w.jobs.close()
    with open(result, "w") as f:
        json.dump({"created": w.created, "ops": w.ops, "errors": w.errors}, f)


if __name__ == "__main__":
    main()
