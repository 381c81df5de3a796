"""Storage faults: a read-only database directory, garbage in jobs.db, a full disk.

Each gives a clear error naming the file, never a corrupted database, and never a dead kernel.
"""

import os
import sqlite3

import pytest
from reliability_support import figure, mounted, needs_root, read_only, run_cli, stop_all

from nodejobs import DatabaseError, JobDB, Jobs

pytestmark = pytest.mark.reliability

TMPFS_SIZE = "2m"
SURVIVED: dict[str, str] = {}


def integrity(db_file: str) -> str:
    conn = sqlite3.connect(db_file)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def fill(directory: str) -> str:
    """Fill the file system of ``directory`` to the last byte; return the filler file's path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)
    return path


def test_read_only_database_directory_gives_an_error_naming_the_file(tmp_path):
    needs_root()
    db = str(tmp_path / "db")
    with Jobs(db) as jobs:
        jobs.wait(jobs.run("echo kept", "kept").self_id, timeout=10)
    db_file = os.path.join(db, "jobs.db")
    with read_only(db):
        with pytest.raises(DatabaseError, match=db_file) as caught:
            Jobs(db)
        assert "not writable" in str(caught.value)
        done = run_cli(db, "ls")
        assert done.returncode == 1 and db_file in done.stderr and "Traceback" not in done.stderr
    assert integrity(db_file) == "ok"
    with Jobs(db) as jobs:  # nothing was lost or broken, and it works again
        assert jobs.get_status("kept").status == "finished" and jobs.job_logs("kept")[0] == "kept\n"
    SURVIVED["read-only directory"] = "DatabaseError naming jobs.db; database intact"


def test_directory_turning_read_only_under_an_open_database(tmp_path):
    needs_root()
    db = str(tmp_path / "db")
    with Jobs(db) as jobs:
        try:
            jobs.run(["sleep", "60"], "running")
            with read_only(db):
                try:
                    record = jobs.run("echo no", "cannot-log")
                except DatabaseError as exc:
                    assert os.path.join(db, "jobs.db") in str(exc)
                else:  # the open database still takes writes: the job cannot get its log files
                    assert record.status == "failed_start" and "Read-only" in record.reason, dict(record)
                assert jobs.get_status("running").status == "running"
                assert jobs.stop("running", grace=1).status == "stopped"
        finally:
            stop_all(jobs)
    assert integrity(os.path.join(db, "jobs.db")) == "ok"


@pytest.mark.parametrize("damage", ["garbage", "truncated-pages", "empty-header"])
def test_garbage_in_jobs_db_gives_an_error_naming_the_file_and_is_left_alone(tmp_path, damage):
    db = str(tmp_path / "db")
    with Jobs(db) as jobs:
        for n in range(30):
            jobs.run(["true"], f"j{n}")
        jobs.wait("j29", timeout=10)
    db_file = os.path.join(db, "jobs.db")
    JobDB(db).close()  # a clean close checkpoints the WAL into jobs.db
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db_file + suffix):
            os.remove(db_file + suffix)
    data = bytearray(open(db_file, "rb").read())
    if damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "truncated-pages":
        data[4096:] = os.urandom(len(data) - 4096)
    else:
        data[:100] = b"\0" * 100
    with open(db_file, "wb") as f:
        f.write(data)
    with pytest.raises(DatabaseError, match=db_file), Jobs(db) as jobs:
        jobs.list_status()
    done = run_cli(db, "ls")
    assert done.returncode == 1 and db_file in done.stderr and "Traceback" not in done.stderr
    assert open(db_file, "rb").read() == bytes(data)  # the user's file is not "repaired" behind their back
    SURVIVED[f"jobs.db {damage}"] = "DatabaseError naming jobs.db; file untouched"


def test_disk_full_gives_an_error_naming_the_file_and_the_database_survives(tmp_path):
    needs_root()
    with mounted(str(tmp_path / "small"), "-o", f"size={TMPFS_SIZE}") as disk:
        db = os.path.join(disk, "db")
        db_file = os.path.join(db, "jobs.db")
        jobs = Jobs(db)
        try:
            for n in range(20):
                jobs.run(["echo", f"before-{n}"], f"before-{n}")
            jobs.run(["sh", "-c", f"while [ ! -e {disk}/go ]; do sleep 0.02; done; exit 0"], "ending")
            open(os.path.join(disk, "go.tmp"), "w").close()
            filler = fill(disk)
            errors = 0
            for n in range(10):
                try:
                    record = jobs.run(["echo", "x"], f"during-{n}")
                except DatabaseError as exc:
                    errors += 1
                    assert db_file in str(exc) and "full" in str(exc)
                else:
                    assert record.status in ("finished", "running", "failed", "failed_start"), dict(record)
            assert errors, "a full disk never produced an error: the test did not fill it"
            os.rename(os.path.join(disk, "go.tmp"), os.path.join(disk, "go"))
            # The job ends while nothing can be written: its end is still reported, with the right code.
            record = jobs.wait("ending", timeout=10)
            assert (record.status, record.exit_code) == ("finished", 0)
            assert len(jobs.list_status()) >= 21
            os.remove(filler)
            assert integrity(db_file) == "ok"
            assert jobs.get_status("ending").status == "finished"  # recorded now that there is room
            assert all(jobs.get_status(f"before-{n}").status == "finished" for n in range(20))
            again = jobs.run(["echo", "back"], "after")
            assert jobs.wait(again.self_id, timeout=10).status == "finished"
            assert jobs.job_logs("after")[0] == "back\n"
        finally:
            stop_all(jobs)
            jobs.close()
    SURVIVED["disk full"] = f"DatabaseError naming jobs.db x{errors}; the database intact after"


KERNEL_SETUP = """
%load_ext nodejobs_magics
%config JobMagics.db_path = {db!r}
"""


@pytest.mark.timeout(120)
def test_kernel_with_the_extension_survives_a_full_disk_and_a_garbage_database(tmp_path, capsys):
    needs_root()
    from jupyter_client.manager import start_new_kernel

    with mounted(str(tmp_path / "small"), "-o", f"size={TMPFS_SIZE}") as disk:
        db = os.path.join(disk, "db")
        db_file = os.path.join(db, "jobs.db")
        manager, client = start_new_kernel(kernel_name="python3")
        try:

            def run(code: str) -> dict:
                reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
                return reply["content"]

            assert run(KERNEL_SETUP.format(db=db))["status"] == "ok"
            assert run("%job run --id ok -- echo fine")["status"] == "ok"
            filler = fill(disk)
            reply = run("%job run --id full -- echo no")
            assert reply["status"] == "error" and reply["ename"] == "UsageError", reply
            assert db_file in reply["evalue"] and "full" in reply["evalue"]
            assert run("x = %job list\nassert 'ok' in x.index")["status"] == "ok"  # reading still works
            os.remove(filler)
            assert run("%job run --id back -- echo back")["status"] == "ok"
            assert integrity(db_file) == "ok"
            assert run("%unload_ext nodejobs_magics")["status"] == "ok"
            with open(db_file, "wb") as f:  # now the database turns to garbage
                f.write(os.urandom(8192))
            for suffix in ("-wal", "-shm"):
                if os.path.exists(db_file + suffix):
                    os.remove(db_file + suffix)
            reply = run("%load_ext nodejobs_magics")
            assert reply["status"] == "error" and db_file in reply["evalue"], reply
            assert run("1 + 1")["status"] == "ok" and manager.is_alive()
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    SURVIVED["kernel with the extension"] = "one-line UsageError naming jobs.db; kernel alive"
    figure("storage", "; ".join(f"{k}: {v}" for k, v in SURVIVED.items()), capsys)
