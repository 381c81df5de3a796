"""Function jobs on the Slurm test cluster: a value and an exception come back; 20 items through
``map_fn`` and through ``executor(group=...).map`` with a limit of 2 return in order."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

from nodejobs.errors import FunctionError

pytestmark = pytest.mark.slurm
LONG = 180
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # as a notebook's: the jobs need not import it


def square(x):
    print(f"squaring {x}")
    return x * x


def explode(message):
    raise ValueError(message)


def test_a_value_and_an_exception_come_back_from_slurm(sjobs):
    record = sjobs.submit(square, 7)
    assert record.backend == "slurm" and record.command.endswith("square(...)")
    assert sjobs.result(record.self_id, timeout=LONG) == 49
    assert sjobs.job_logs(record.self_id)[0] == "squaring 7\n"
    failed = sjobs.submit(explode, "on the cluster")
    with pytest.raises(FunctionError) as raised:
        sjobs.result(failed.self_id, timeout=LONG)
    assert "ValueError: on the cluster" in raised.value.remote_traceback
    assert failed.self_id in str(raised.value)


def test_twenty_items_through_map_fn_and_the_executor_with_a_limit_of_two(sjobs):
    sjobs.set_limit("squares", 2)
    ids = sjobs.map_fn(square, range(20), group="squares")
    assert [sjobs.result(job_id, timeout=LONG) for job_id in ids] == [n * n for n in range(20)]
    sjobs.set_limit("pool", 2)
    with sjobs.executor(group="pool", prefix="sq") as executor:
        assert list(executor.map(square, range(20), timeout=LONG * 2)) == [n * n for n in range(20)]
    records = sjobs.list_status().values()
    assert {r.backend for r in records} == {"slurm"} and {r.slot for r in records} == {0, 1}
