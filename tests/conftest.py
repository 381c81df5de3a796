"""Shared fixtures: a fresh database directory per test, and jobs cleaned up after it."""

import os
import time

import pytest

from nodejobs import Jobs


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "db")


@pytest.fixture
def jobs(db_path):
    """A ``Jobs`` on a fresh database; every job still running at the end is stopped."""
    j = Jobs(db_path, grace=1.0)
    yield j
    for record in j.list_status().values():
        if record.is_active:
            j.stop(record.self_id, grace=0.2)
    j.close()


def wait_until(predicate, timeout=10.0, interval=0.01, message="condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Tests never touch the user's default database."""
    monkeypatch.setenv("NODEJOBS_HOME", str(tmp_path / "home"))
    os.environ.pop("XDG_DATA_HOME", None)
