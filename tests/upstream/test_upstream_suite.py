"""The original nodejobs 0.6.2's own black-box suite (``jobs_raw_test.py`` from its wheel) against us.

Its npm test is left out: it needs its author's machine (a hard-coded project directory and nvm path).
The wheel comes from the package index (``pip download``), cached in ``bench/.work/wheels``.
"""

import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WHEELS = os.path.join(ROOT, "bench", ".work", "wheels")
WHEEL = os.path.join(WHEELS, "nodejobs-0.6.2-py3-none-any.whl")

pytestmark = pytest.mark.upstream


@pytest.fixture(scope="module")
def upstream_suite(tmp_path_factory) -> str:
    if not os.path.exists(WHEEL):
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "nodejobs==0.6.2", "-d", WHEELS],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert got.returncode == 0 and os.path.exists(WHEEL), f"cannot fetch nodejobs 0.6.2: {got.stderr}"
    where = tmp_path_factory.mktemp("upstream")
    with zipfile.ZipFile(WHEEL) as wheel:
        (where / "jobs_raw_test.py").write_bytes(wheel.read("nodejobs/jobs_raw_test.py"))
    return str(where)


def test_the_upstream_suite_passes_except_its_npm_test(upstream_suite):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "jobs_raw_test.py",
         "-k", "not npm"],
        cwd=upstream_suite, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "5 passed, 1 deselected" in done.stdout, done.stdout[-2000:]
