"""Load: several processes run, list, stop, follow and read jobs in one database at the same time."""

import json
import os
import subprocess
from collections import Counter

import pytest
from reliability_support import PY, figure, stop_all, wait_until

from nodejobs import JobDB, JobExistsError, Jobs

pytestmark = pytest.mark.reliability

LOAD_PROCESSES = 8
LOAD_SECONDS = float(os.environ.get("NODEJOBS_LOAD_SECONDS", "60"))
CONTENDERS = 8
WORKER = os.path.join(os.path.dirname(__file__), "load_worker.py")
# kind -> (allowed final statuses, exit code); a stopped job's code is the signal's (143 or 137).
EXPECTED = {
    "quick": ({"finished"}, {0}),
    "quick-follow": ({"finished"}, {0}),
    "fail": ({"failed", "failed_start"}, {3}),
    "long": ({"stopped"}, {143, 137}),
}


@pytest.mark.timeout(LOAD_SECONDS + 150)
def test_eight_processes_share_one_database_without_errors_or_lost_records(tmp_path, capsys):
    db = str(tmp_path / "db")
    JobDB(db).close()
    results = [tmp_path / f"worker-{n}.json" for n in range(LOAD_PROCESSES)]
    workers = [
        subprocess.Popen([PY, WORKER, db, str(n), str(LOAD_SECONDS), str(results[n])], stderr=subprocess.PIPE)
        for n in range(LOAD_PROCESSES)
    ]
    try:
        for proc in workers:
            _, stderr = proc.communicate(timeout=LOAD_SECONDS + 90)
            assert proc.returncode == 0, stderr.decode(errors="replace")[-3000:]
    finally:
        for proc in workers:
            proc.kill()
            proc.wait()

    created: dict[str, str] = {}
    ops: Counter = Counter()
    errors: list[str] = []
    for path in results:
        data = json.loads(path.read_text())
        assert not set(data["created"]) & set(created), "two workers created the same id"
        created.update(data["created"])
        ops.update(data["ops"])
        errors += data["errors"]
    assert errors == [], f"{len(errors)} errors:\n" + "\n".join(errors[:10])

    with Jobs(db) as jobs:
        try:
            listing = jobs.list_status()
            ids = list(listing)
            assert len(ids) == len(set(ids))
            shared = {i for i in ids if i.startswith("shared-")}
            lost = set(created) - set(ids)
            extra = set(ids) - set(created) - shared
            assert not lost, f"records lost: {sorted(lost)[:20]}"
            assert not extra, f"records nobody created: {sorted(extra)[:20]}"
            wrong = {}
            for job_id, kind in created.items():
                record = listing[job_id]
                statuses, codes = EXPECTED[kind]
                if record.status not in statuses or record.exit_code not in codes:
                    wrong[job_id] = dict(record)
                elif kind in ("quick", "quick-follow") and not jobs.job_logs(job_id)[0].endswith(
                    f"{job_id}\n"
                ):
                    wrong[job_id] = {"out": jobs.job_logs(job_id)}
            assert not wrong, f"{len(wrong)} wrong final states, e.g. {list(wrong.items())[:3]}"
            for job_id in shared:
                assert jobs.wait(job_id, timeout=10).status == "finished"
            kinds = Counter(created.values())
            total = sum(ops.values())
            figure(
                "load",
                f"{LOAD_PROCESSES} processes x {LOAD_SECONDS:.0f} s: {total} operations "
                f"({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))}); {len(created)} jobs "
                f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); errors 0, records lost 0, "
                "duplicated 0, wrong final states 0",
                capsys,
            )
        finally:
            stop_all(jobs)


CONTEND = """
import os, sys, time
from nodejobs import JobExistsError, Jobs
db, gate, job_id, ready = sys.argv[1:5]
with Jobs(db) as jobs:
    open(ready, "w").close()
    while not os.path.exists(gate):
        time.sleep(0.001)
    try:
        record = jobs.run(["sleep", "30"], job_id)
        print("started", record.status, record.last_pid)
    except JobExistsError as exc:
        print("refused", exc)
"""


@pytest.mark.parametrize("round_", range(3))
def test_processes_racing_for_one_id_start_it_exactly_once(tmp_path, round_):
    db = str(tmp_path / "db")
    gate = tmp_path / "gate"
    JobDB(db).close()
    procs = [
        subprocess.Popen(
            [PY, "-c", CONTEND, db, str(gate), "race", str(tmp_path / f"ready-{n}")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(CONTENDERS)
    ]
    with Jobs(db) as jobs:
        try:
            ready = [tmp_path / f"ready-{n}" for n in range(CONTENDERS)]
            wait_until(lambda: all(r.exists() for r in ready), 30, message="contenders to open the database")
            gate.touch()
            outputs = [p.communicate(timeout=60)[0].split() for p in procs]
            started = [o for o in outputs if o[0] == "started"]
            assert len(started) == 1, outputs
            assert started[0][1] == "running"
            record = jobs.get_status("race")
            assert record.status == "running" and record.last_pid == int(started[0][2])
            with pytest.raises(JobExistsError):
                jobs.run(["sleep", "30"], "race")
        finally:
            for p in procs:
                p.kill()
                p.wait()
            stop_all(jobs)
        assert jobs.get_status("race").status == "stopped"
