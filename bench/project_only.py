"""Figures 0.6.2 has no equivalent for: dashboard refresh, reaper idle CPU, tail of a 1 GB log.

Run by the project's Python only: ``python project_only.py --work DIR --out FILE [--sessions FILE]``.
Writes ``{"samples": {metric: [...]}, "info": {...}}`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

from workload import Sessions, poll, repeat

from nodejobs import Jobs

N_RUNNING = 10
N_ENDED = 90
IDLE_SECONDS = 3.0
LOG_BYTES = 1 << 30  # 1 GiB
LOG_TEXT_BYTES = 8 << 20  # real lines at the end; the rest is a hole (sparse)
TAIL_LINES = 100


def thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) used so far by thread ``native_id`` of this process."""
    with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reaper_idle(jobs: Jobs) -> dict[str, list[float]]:
    """CPU of the whole process and of the reaper thread while ``N_RUNNING`` jobs run and nothing happens."""
    reaper = next(t for t in threading.enumerate() if t.name == "nodejobs-reaper")
    p0, r0, t0 = time.process_time(), thread_cpu(reaper.native_id), time.monotonic()
    time.sleep(IDLE_SECONDS)  # the measurement interval itself, not a synchronisation
    p1, r1, t1 = time.process_time(), thread_cpu(reaper.native_id), time.monotonic()
    return {"reaper_idle_process_cpu_frac": [(p1 - p0) / (t1 - t0)], "reaper_idle_thread_cpu_s": [r1 - r0]}


def dashboard_refresh(jobs: Jobs) -> tuple[dict[str, list[float]], dict]:
    """CPU seconds per refresh of the dashboard showing the database's 100 jobs (steady state)."""
    try:
        from nodejobs_magics.dashboard import JobDashboard
    except ImportError as exc:  # measured what a refresh does instead
        info = {"dashboard": f"nodejobs_magics.dashboard not importable ({exc}); emulated refresh"}

        def refresh() -> None:
            records = jobs.list_status()
            records.to_dataframe()
            jobs.tail(next(reversed(records)), 40)

        close = None
    else:
        t0 = time.process_time()
        board = JobDashboard(jobs, refresh_interval=3600.0)  # its own thread stays idle; we drive it
        info = {
            "dashboard": "nodejobs_magics.dashboard.JobDashboard.refresh()",
            "open_cpu_s": time.process_time() - t0,  # builds the widgets: not the recurring cost
            "rows": len(board.rows),
        }
        refresh, close = board.refresh, board.close
    try:
        cpu = []
        for _ in range(20):
            t0 = time.process_time()
            refresh()
            cpu.append(time.process_time() - t0)
        wall = repeat(refresh, 5, 20, 0.5)
    finally:
        if close:
            close()
    return {"dashboard_refresh_cpu_s": cpu, "dashboard_refresh_wall_s": wall}, info


def tail_1gb(jobs: Jobs, job_id: str) -> tuple[dict[str, list[float]], dict]:
    """``Jobs.tail(job_id, 100)`` after the job's stdout was replaced by a 1 GiB file (mostly a hole)."""
    out_path = jobs.jobdb.log_paths(jobs.get_status(job_id))[0]
    line = b"%09d the quick brown fox jumps over the lazy dog, again and again and again\n"
    try:
        with open(out_path, "wb") as f:
            n_lines = LOG_TEXT_BYTES // len(line % 0)
            chunk = b"".join(line % i for i in range(n_lines))
            f.truncate(LOG_BYTES - len(chunk))
            f.seek(LOG_BYTES - len(chunk))
            f.write(chunk)
            last = (line % (n_lines - 1)).decode()
        size = os.path.getsize(out_path)
        text = jobs.tail(job_id, TAIL_LINES)
        lines = text.splitlines(keepends=True)
        assert len(lines) == TAIL_LINES and lines[-1] == last, (len(lines), lines[-1:])
        times = repeat(lambda: jobs.tail(job_id, TAIL_LINES), 5, 50, 0.5)
    finally:
        os.remove(out_path)
    return {"tail_1gb_100_lines_s": times}, {"log_bytes": size, "text_bytes_at_end": LOG_TEXT_BYTES}


def run_cpu_bound(jobs: Jobs, sessions: Sessions) -> dict[str, list[float]]:
    """run() of a job that never blocks: it waits the whole startup window (see the notes)."""
    times = []
    for i in range(5):
        job_id = f"busy{i}"
        t0 = time.perf_counter()
        record = jobs.run([sys.executable, "-c", "while True: pass"], job_id)
        times.append(time.perf_counter() - t0)
        sessions.note(job_id, record)
        jobs.stop(job_id, grace=1)
        sessions.sids.pop(job_id, None)
    return {"run_cpu_bound_s": times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sessions")
    args = parser.parse_args()
    sessions = Sessions(args.sessions)
    samples: dict[str, list[float]] = {}
    info: dict = {}
    jobs = Jobs(os.path.join(args.work, "db"))
    try:
        running = [f"run{i:03d}" for i in range(N_RUNNING)]
        for job_id in running:
            sessions.note(job_id, jobs.run(["sleep", "3600"], job_id))
        samples.update(reaper_idle(jobs))
        for i in range(N_ENDED):
            jobs.run(["echo", f"line {i}"], f"ended{i:03d}")
        poll(lambda: all(not r.is_active for i, r in jobs.list_status().items() if i.startswith("ended")),
             60, "the ended jobs to end", 0.01)  # fmt: skip
        more, info["dashboard"] = dashboard_refresh(jobs)
        samples.update(more)
        more, info["tail"] = tail_1gb(jobs, "ended000")
        samples.update(more)
        samples.update(run_cpu_bound(jobs, sessions))
        for job_id in running:
            jobs.stop(job_id)
            sessions.sids.pop(job_id, None)
    finally:
        sessions.kill_all()
        jobs.close()
    with open(args.out, "w") as f:
        json.dump({"samples": samples, "info": info}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
