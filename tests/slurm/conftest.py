"""Fixtures of the Slurm tests: they need the test cluster (``scripts/slurm_setup.sh``) and fail if it
is down; every job they leave active is stopped."""

from __future__ import annotations

import pytest
from slurm_cluster import require_cluster

from nodejobs import Jobs


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/slurm/" in str(item.fspath):
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(autouse=True)
def _cluster_up():
    require_cluster()


@pytest.fixture
def sjobs(db_path):
    """A ``Jobs`` on Slurm on a fresh database."""
    j = Jobs(db_path, backend="slurm", grace=1.0)
    yield j
    active = [r.self_id for r in j.list_status().values() if r.is_active]
    for job_id in active:
        j.stop(job_id, grace=0.2)
    j.close()
