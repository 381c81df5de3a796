"""The benchmark workload, run unchanged by the project's Python and by nodejobs 0.6.2's.

It uses only the API both share: ``Jobs(db_path)``, ``run(command_list, job_id)``, ``stop(job_id)``,
``get_status``, ``list_status``, ``job_logs`` and ``jobdb.update_status``. Commands are lists because
0.6.2 accepts nothing else (its ``run`` tests ``command is str``, never true, and its launcher asserts
a list). Job processes are found through the session each job runs in (both implementations start a
job with ``setsid``): the session of ``last_pid`` holds the payload and whatever supervises it.

Usage: ``python workload.py {jobs,records} --work DIR --out FILE [--records-dir DIR] [--sessions FILE]``.
Writes ``{"impl": {...}, "samples": {metric: [seconds or bytes, ...]}, "info": {...}}`` as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable

import psutil

from nodejobs.jobs import Jobs

TERMINAL = {"finished", "failed", "stopped", "failed_start", "failed_stop"}
LONG_COMMAND = ["sleep", "3600"]
# Ignores SIGTERM (the ignore is inherited through exec), then says it is ready.
STUBBORN_COMMAND = ["sh", "-c", "trap '' TERM; echo ready; exec sleep 3600"]
N_LONG = 10
N_STOP = 3
N_SHORT = 3
N_THROUGHPUT = 50
IDLE_SECONDS = 2.0
RECORD_SIZES = (100, 1000, 2000, 10000)


# -- helpers shared with project_only.py ------------------------------------------------------------


def poll(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.002) -> object:
    """Call ``predicate`` until it returns something truthy; raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def repeat(
    fn: Callable[[], object], min_reps: int = 3, max_reps: int = 30, budget: float = 1.0
) -> list[float]:
    """Wall seconds of ``fn()`` calls: at least ``min_reps``, more while under ``budget`` seconds."""
    times: list[float] = []
    spent = 0.0
    while len(times) < min_reps or (len(times) < max_reps and spent < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return times


def session_processes(sid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of session ``sid``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


class Sessions:
    """The sessions of the jobs this process started, noted in a file so the runner can kill leftovers."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.sids: dict[str, int] = {}

    def note(self, job_id: str, record: dict | None) -> int | None:
        pid = record.get("last_pid") if record else None
        if not pid or pid < 0:
            return None
        try:
            sid = os.getsid(pid)
            created = psutil.Process(sid).create_time()
        except (OSError, psutil.Error):
            return None  # already ended
        self.sids[job_id] = sid
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps({"sid": sid, "created": created}) + "\n")
        return sid

    def kill(self, job_id: str) -> None:
        sid = self.sids.pop(job_id, None)
        if sid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGKILL)

    def kill_all(self) -> None:
        for job_id in list(self.sids):
            self.kill(job_id)


def payload_of(sid: int, argv: list[str]) -> psutil.Process | None:
    """The process of session ``sid`` running exactly ``argv``."""
    for proc in session_processes(sid):
        with contextlib.suppress(psutil.Error):
            if proc.cmdline() == argv:
                return proc
    return None


def supervision_memory(sid: int, payload: psutil.Process) -> dict[str, int]:
    """RSS, PSS and USS of the session's processes other than the payload, in bytes."""
    totals = {"rss": 0, "pss": 0, "uss": 0}
    for proc in session_processes(sid):
        if proc.pid == payload.pid:
            continue
        mem = proc.memory_full_info()
        for key in totals:
            totals[key] += getattr(mem, key)
    return totals


def supervision_cpu(sids: list[int], payloads: set[int]) -> float:
    """CPU seconds used so far by the non-payload processes of ``sids``."""
    total = 0.0
    for sid in sids:
        for proc in session_processes(sid):
            if proc.pid in payloads:
                continue
            with contextlib.suppress(psutil.Error):
                cpu = proc.cpu_times()
                total += cpu.user + cpu.system
    return total


def status_of(jobs: Jobs, job_id: str) -> str | None:
    record = jobs.get_status(job_id)
    return record.get("status") if record else None


def wait_terminal(jobs: Jobs, job_id: str, timeout: float = 60.0) -> str:
    """Poll ``get_status`` until the job's final status is visible; return it."""
    return poll(lambda: (s := status_of(jobs, job_id)) in TERMINAL and s, timeout, f"{job_id} to end")  # type: ignore[return-value]


def wait_session_gone(sid: int, timeout: float = 15.0) -> bool:
    try:
        poll(lambda: not session_processes(sid), timeout, f"session {sid} to end", interval=0.02)
        return True
    except TimeoutError:
        return False


# -- the phases ---------------------------------------------------------------------------------------


def jobs_phase(work: str, sessions: Sessions) -> tuple[dict[str, list[float]], dict]:
    """Launch, supervision memory and CPU, stop, short-job latency and throughput."""
    samples: dict[str, list[float]] = {}
    info: dict = {}
    tag = uuid.uuid4().hex[:6]  # 0.6.2 finds jobs by id in every process's command line, machine-wide
    jobs = Jobs(os.path.join(work, "db"))

    # run() latency of long-running jobs, which then serve the memory, CPU and stop measurements.
    long_ids = [f"nb{tag}-long{i:03d}" for i in range(N_LONG)]
    sids, payloads = {}, {}
    for job_id in long_ids:
        t0 = time.perf_counter()
        record = jobs.run(list(LONG_COMMAND), job_id)
        samples.setdefault("run_s", []).append(time.perf_counter() - t0)
        assert record.get("status") == "running", record
        sids[job_id] = sessions.note(job_id, record)
    for job_id in long_ids:
        sid = sids[job_id]
        payloads[job_id] = poll(lambda s=sid: payload_of(s, LONG_COMMAND), 10, f"payload of {job_id}")

    for job_id in long_ids:
        mem = supervision_memory(sids[job_id], payloads[job_id])
        for key, value in mem.items():
            samples.setdefault(f"supervision_{key}_bytes", []).append(value)

    # CPU used while nothing happens: this process plus every supervisor, over IDLE_SECONDS.
    payload_pids = {p.pid for p in payloads.values()}
    session_ids = list(sids.values())
    sup0 = supervision_cpu(session_ids, payload_pids)  # scanned outside the host's interval
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(IDLE_SECONDS)  # the measurement interval itself, not a synchronisation
    cpu1, t1 = time.process_time(), time.monotonic()
    sup1 = supervision_cpu(session_ids, payload_pids)
    samples["idle_cpu_host_frac"] = [(cpu1 - cpu0) / (t1 - t0)]
    samples["idle_cpu_supervisors_frac"] = [(sup1 - sup0) / (t1 - t0)]

    # stop() of jobs that exit on SIGTERM.
    for job_id in long_ids[:N_STOP]:
        t0 = time.perf_counter()
        result = jobs.stop(job_id)
        samples.setdefault("stop_term_s", []).append(time.perf_counter() - t0)
        info.setdefault("stop_term_returned", []).append(result.get("status") if result else None)
        info.setdefault("stop_term_session_gone", []).append(wait_session_gone(sids[job_id]))
        sessions.sids.pop(job_id, None)
    for job_id in long_ids[N_STOP:]:
        sessions.kill(job_id)  # clean-up, not measured

    # stop() of a job that ignores SIGTERM.
    job_id = f"nb{tag}-stubborn"
    record = jobs.run(list(STUBBORN_COMMAND), job_id)
    sid = sessions.note(job_id, record)
    poll(lambda: "ready" in jobs.job_logs(job_id)[0], 10, "the stubborn job to trap SIGTERM", 0.01)
    t0 = time.perf_counter()
    result = jobs.stop(job_id)
    samples["stop_ignoring_s"] = [time.perf_counter() - t0]
    info["stop_ignoring_returned"] = result.get("status") if result else None
    info["stop_ignoring_session_gone"] = wait_session_gone(sid) if sid else True
    sessions.kill(job_id)

    # End-to-end latency of a short job: run() until get_status shows its final status.
    for i in range(N_SHORT):
        job_id = f"nb{tag}-short{i:03d}"
        t0 = time.perf_counter()
        jobs.run(["echo", "short"], job_id)
        final = wait_terminal(jobs, job_id)
        samples.setdefault("short_e2e_s", []).append(time.perf_counter() - t0)
        info.setdefault("short_final", []).append(final)
        info.setdefault("short_output_ok", []).append(jobs.job_logs(job_id)[0] == "short\n")

    # Throughput: launch N_THROUGHPUT short jobs, then wait for all of them (list_status polling).
    ids = [f"nb{tag}-many{i:03d}" for i in range(N_THROUGHPUT)]
    t0 = time.perf_counter()
    for i, job_id in enumerate(ids):
        jobs.run(["echo", f"job {i}"], job_id)
    launched = time.perf_counter() - t0

    def all_done() -> dict | None:
        found = jobs.list_status()
        statuses = {i: found[i].get("status") for i in ids if i in found}
        return statuses if len(statuses) == len(ids) and set(statuses.values()) <= TERMINAL else None

    statuses = poll(all_done, 120, "all throughput jobs to end", 0.01)
    total = time.perf_counter() - t0
    samples["throughput_launch_s"] = [launched]
    samples["throughput_total_s"] = [total]
    samples["throughput_jobs_per_s"] = [N_THROUGHPUT / total]
    info["throughput_statuses"] = sorted(set(statuses.values()))  # type: ignore[union-attr]
    info["throughput_output_ok"] = all(jobs.job_logs(j)[0] == f"job {i}\n" for i, j in enumerate(ids))
    return samples, info


def records_phase(records_dir: str) -> tuple[dict[str, list[float]], dict]:
    """get_status and list_status on databases of 100 ... 10,000 ended-job records.

    The databases are built once per bench run (inserting through ``jobdb.update_status`` is slow in
    0.6.2) and reused by later rounds: reads do not change them.
    """
    samples: dict[str, list[float]] = {}
    info: dict = {}
    for n in RECORD_SIZES:
        db = os.path.join(records_dir, f"n{n}")
        marker = os.path.join(db, "built.json")
        jobs = Jobs(db)
        if not os.path.exists(marker):
            t0 = time.perf_counter()
            for i in range(n):
                job_id = f"rec{i:05d}"
                jobs.jobdb.update_status(
                    {
                        "self_id": job_id,
                        "status": "finished" if i % 10 else "failed",
                        "last_pid": 10_000 + i,
                        "cwd": "/tmp",
                        "dirname": job_id,
                        "logdir": os.path.join(db, "logs"),
                        "logfile": job_id,
                    }
                )
            samples[f"insert_{n}_s"] = [time.perf_counter() - t0]
            with open(marker, "w") as f:
                json.dump({"records": n, "insert_s": samples[f"insert_{n}_s"][0]}, f)
        with open(marker) as f:
            built = json.load(f)
        info[f"insert_{n}_s"] = built["insert_s"]
        target = f"rec{n // 2:05d}"
        assert jobs.get_status(target).get("self_id") == target
        assert len(jobs.list_status()) == n
        samples[f"get_status_{n}_s"] = repeat(lambda j=jobs, t=target: j.get_status(t), 5, 50, 0.5)
        samples[f"list_status_{n}_s"] = repeat(jobs.list_status, 3, 30, 1.5)
    return samples, info


def describe() -> dict:
    import nodejobs

    return {
        "version": importlib.metadata.version("nodejobs"),
        "module": os.path.dirname(os.path.abspath(nodejobs.__file__)),
        "python": sys.executable,
        "python_version": sys.version.split()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("jobs", "records"))
    parser.add_argument("--work", required=True, help="scratch directory for this run")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--records-dir", help="where the record databases are kept between rounds")
    parser.add_argument("--sessions", help="file to note job sessions in (for clean-up)")
    args = parser.parse_args()
    sessions = Sessions(args.sessions)
    try:
        if args.phase == "jobs":
            samples, info = jobs_phase(args.work, sessions)
        else:
            samples, info = records_phase(args.records_dir or os.path.join(args.work, "records"))
    finally:
        sessions.kill_all()
    with open(args.out, "w") as f:
        json.dump({"impl": describe(), "samples": samples, "info": info}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
