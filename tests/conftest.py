"""Shared fixtures: a fresh database directory per test, and jobs cleaned up after it."""

import os

import pytest
from polling import pid_alive, wait_until  # noqa: F401 -- re-exported to the tests

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


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Tests never touch the user's default database."""
    monkeypatch.setenv("NODEJOBS_HOME", str(tmp_path / "home"))
    os.environ.pop("XDG_DATA_HOME", None)


@pytest.fixture
def sjobs(db_path):
    """A ``Jobs`` on the Slurm test cluster (failing the test if it is down), on a fresh database."""
    from slurm_cluster import require_cluster

    require_cluster()
    j = Jobs(db_path, backend="slurm", grace=1.0)
    yield j
    for record in j.list_status().values():
        if record.is_active:
            j.stop(record.self_id, grace=0.2)
    j.close()
