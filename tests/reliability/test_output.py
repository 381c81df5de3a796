"""Output: bytes that are not UTF-8, a single 100 MB line, 1 GB of output.

The job finishes; ``tail`` and ``follow`` stay fast and the reading process's memory stays flat
(its peak resident size is measured against the level before reading).
"""

import os
import time

import pytest
from reliability_support import figure, peak_rss_growth

from nodejobs.store.files import decode

pytestmark = pytest.mark.reliability

MB = 1024 * 1024
LONG_LINE_BYTES = 100 * MB
BIG_OUTPUT_BYTES = 1000 * MB
TAIL_SECONDS = 2.0  # generous for a busy 2-core machine; measured values are reported
FOLLOW_MEMORY = 48 * MB  # follow reads 1 MB chunks: its peak must not grow with the output
TAIL_MEMORY = 64 * MB  # tail reads at most 16 MB from the end, whatever the file's size
FIGURES: dict[str, str] = {}


def timed(function, *args, **kwargs):
    start = time.monotonic()
    result = function(*args, **kwargs)
    return result, time.monotonic() - start


def drain(chunks) -> tuple[int, str]:
    """Consume a follow generator; (characters seen, the last 100 of them)."""
    total, last = 0, ""
    for chunk in chunks:
        total += len(chunk)
        last = (last + chunk[-100:])[-100:]
    return total, last


@pytest.fixture
def big_files(jobs):
    """Delete the jobs' (large) files after the test, so they do not stay in pytest's temp dirs."""
    yield jobs
    for job_id in list(jobs.list_status()):
        if not jobs.get_status(job_id).is_active:
            jobs.remove(job_id)


def test_bytes_that_are_not_utf8(jobs, tmp_path):
    command = (
        r"printf '\377\376 start \303\n'; head -c 1000000 /dev/urandom; printf '\n\360\237\231\202 end\n'"
    )
    jobs.run(command, "binary")
    followed = "".join(jobs.follow("binary"))
    record = jobs.wait("binary", timeout=30)
    assert (record.status, record.exit_code) == ("finished", 0)
    raw = open(jobs.jobdb.log_paths(record)[0], "rb").read()
    assert followed == decode(raw)  # chunk boundaries never change the text
    assert jobs.job_logs("binary")[0] == decode(raw)
    assert jobs.tail("binary", 1) == "\U0001f642 end\n"
    assert jobs.tail("binary", 1000).endswith("\U0001f642 end\n") and "\ufffd" in jobs.tail("binary", 1000)
    FIGURES["non-UTF-8 bytes"] = "1 MB of random bytes: follow == job_logs == file decoded with U+FFFD"


def test_a_single_100_mb_line(big_files):
    jobs = big_files
    command = f"printf 'start\\n'; head -c {LONG_LINE_BYTES} /dev/zero | tr '\\0' x; printf '\\nend\\n'"
    jobs.run(command, "long-line")
    with peak_rss_growth() as follow_memory:
        (chars, last), follow_seconds = timed(drain, jobs.follow("long-line"))
    record = jobs.wait("long-line", timeout=60)
    assert (record.status, record.exit_code) == ("finished", 0)
    assert chars == LONG_LINE_BYTES + len("start\n\nend\n") and last.endswith("x\nend\n")
    with peak_rss_growth() as tail_memory:
        text, tail_seconds = timed(jobs.tail, "long-line", 2)
    assert text.endswith("xxxx\nend\n") and len(text) <= 16 * MB + 10  # the line is cut, not read whole
    short, short_seconds = timed(jobs.tail, "long-line", 1)
    assert short == "end\n"
    assert tail_seconds < TAIL_SECONDS and short_seconds < TAIL_SECONDS
    assert follow_memory["growth"] < FOLLOW_MEMORY, follow_memory
    assert tail_memory["growth"] < TAIL_MEMORY, tail_memory
    FIGURES["100 MB line"] = (
        f"follow {follow_seconds:.1f} s, peak +{follow_memory['growth'] / MB:.0f} MB; tail of the line "
        f"{tail_seconds * 1000:.0f} ms, peak +{tail_memory['growth'] / MB:.0f} MB (cut to 16 MB); "
        f"tail -n 1 {short_seconds * 1000:.1f} ms"
    )


@pytest.mark.timeout(240)
def test_one_gigabyte_of_output(big_files, capsys):
    jobs = big_files
    line = "nodejobs reliability output line 0123456789abcdef"
    jobs.run(f"yes '{line}' | head -c {BIG_OUTPUT_BYTES}", "gigabyte")
    with peak_rss_growth() as follow_memory:  # follows while the job writes
        (chars, _), follow_seconds = timed(drain, jobs.follow("gigabyte"))
    record = jobs.wait("gigabyte", timeout=120)
    assert (record.status, record.exit_code) == ("finished", 0)
    assert chars == BIG_OUTPUT_BYTES == os.path.getsize(jobs.jobdb.log_paths(record)[0])
    with peak_rss_growth() as tail_memory:
        text, tail_seconds = timed(jobs.tail, "gigabyte", 10)
    assert text.splitlines()[-2] == line and len(text.splitlines()) == 10
    (late, _), late_seconds = timed(drain, jobs.follow("gigabyte", from_start=False))
    assert late == 0 and late_seconds < TAIL_SECONDS  # following an ended job from its end returns at once
    assert tail_seconds < TAIL_SECONDS
    assert follow_memory["growth"] < FOLLOW_MEMORY, follow_memory
    assert tail_memory["growth"] < 8 * MB, tail_memory
    FIGURES["1 GB output"] = (
        f"follow {follow_seconds:.1f} s ({BIG_OUTPUT_BYTES / MB / follow_seconds:.0f} MB/s), peak "
        f"+{follow_memory['growth'] / MB:.0f} MB; tail -n 10 {tail_seconds * 1000:.1f} ms, peak "
        f"+{tail_memory['growth'] / MB:.1f} MB"
    )
    figure("output", "; ".join(f"{k}: {v}" for k, v in FIGURES.items()), capsys)
