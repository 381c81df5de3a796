"""Profiles of the project's side of a measured operation, for the targets a bench run missed.

``python profile_ops.py OP --work DIR [--out FILE] [--sessions FILE]`` prints a cProfile excerpt (sorted by
cumulative time) for OP in ``run``, ``stop_term``, ``stop_ignoring``, ``list2000``, or, for
``memory``, the processes of one job's session with their memory (a memory figure has no call profile).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys

from workload import LONG_COMMAND, STUBBORN_COMMAND, Sessions, payload_of, poll, session_processes

from nodejobs import Jobs

TOP = 25


def profiled(fn, times: int) -> str:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(times):
        fn()
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative").print_stats(TOP)
    text = out.getvalue()
    return text[text.index("   ncalls") :] if "   ncalls" in text else text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=("run", "stop_term", "stop_ignoring", "list2000", "memory"))
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", help='also write {"text": ...} as JSON here')
    parser.add_argument("--sessions")
    args = parser.parse_args()
    sessions = Sessions(args.sessions)
    jobs = Jobs(os.path.join(args.work, "db"))
    counter = iter(range(10**6))

    def start(command: list[str]) -> str:
        job_id = f"p{next(counter):04d}"
        sessions.note(job_id, jobs.run(list(command), job_id))
        return job_id

    try:
        if args.op == "run":
            text = profiled(lambda: start(LONG_COMMAND), 10)
            header = "cProfile of 10 x Jobs.run(['sleep', '3600'])"
        elif args.op == "stop_term":
            ids = [start(LONG_COMMAND) for _ in range(10)]
            text = profiled(lambda: jobs.stop(ids.pop()), 10)
            header = "cProfile of 10 x Jobs.stop() of jobs that exit on SIGTERM"
        elif args.op == "stop_ignoring":
            job_id = start(STUBBORN_COMMAND)
            poll(lambda: "ready" in jobs.job_logs(job_id)[0], 10, "the job to trap SIGTERM", 0.01)
            text = profiled(lambda: jobs.stop(job_id), 1)
            header = "cProfile of Jobs.stop() of a job that ignores SIGTERM (default grace)"
        elif args.op == "list2000":
            for i in range(2000):
                jobs.jobdb.update_status({"self_id": f"rec{i:05d}", "status": "finished", "last_pid": i + 1})
            text = profiled(jobs.list_status, 20)
            header = "cProfile of 20 x Jobs.list_status() over 2,000 records"
        else:
            job_id = start(LONG_COMMAND)
            sid = sessions.sids[job_id]
            payload = poll(lambda: payload_of(sid, LONG_COMMAND), 10, "the payload")
            rows = [f"{'pid':>8} {'rss KiB':>9} {'pss KiB':>9} {'uss KiB':>9}  command"]
            for proc in session_processes(sid):
                mem = proc.memory_full_info()
                role = "payload" if proc.pid == payload.pid else "supervision"
                rows.append(
                    f"{proc.pid:>8} {mem.rss >> 10:>9} {mem.pss >> 10:>9} {mem.uss >> 10:>9}  "
                    f"[{role}] {' '.join(proc.cmdline()).replace(chr(10), ' ')[:80]}"
                )
            text = "\n".join(rows) + "\n"
            header = "the processes of one job's session"
    finally:
        sessions.kill_all()
        jobs.close()
    print(f"{header}\n\n{text}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"text": f"{header}\n\n{text}"}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
