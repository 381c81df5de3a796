"""The notebooks' nbval setup: every cell's stored output is compared, and ``notebooks/sanitize.cfg``
hides only what changes on every run (pids, times, paths, durations) — not statuses or exit codes."""

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from nodejobs import JobRecord

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATTERNS = get_sanitize_patterns((NOTEBOOKS / "sanitize.cfg").read_text())


def sanitize(text):
    """What nbval compares: ``text`` after every regex of sanitize.cfg, in order."""
    for regex, replacement in PATTERNS:
        text = re.sub(regex, replacement, text)
    return text


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_executed_and_fully_compared(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert cells
    for cell in cells:
        assert cell.execution_count is not None, f"not executed, so nbval would not compare: {cell.source}"
        assert "NBVAL_" not in cell.source, f"nbval marker in {cell.source!r}"
    assert sum(len(cell.outputs) for cell in cells) >= len(cells) // 2
    assert "tempfile.mkdtemp" in cells[0].source, "the first cell must make a throwaway database"
    assert "shutil.rmtree(demo)" in cells[-1].source, "the last cell must remove it"


def test_cli_table_ignores_pids_times_and_their_widths_but_not_status_or_exit_code():
    row = "{id:<9}  {status:<8}  {code:<4}  {pid:<6}  {started}  {seconds:<7}  sleep 300\r\n"
    header = "ID         STATUS    EXIT  PID     STARTED (UTC)        SECONDS  COMMAND\r\n"

    def table(**fields):
        values = dict(id="server", status="stopped", code="143", pid="99999", started="2026-01-02 03:04:05")
        values["seconds"] = "0.4"
        return header + row.format(**{**values, **fields})

    assert sanitize(table()) == sanitize(table(pid="100001", started="2026-12-31 23:59:59", seconds="12.5"))
    assert "<PID>" in sanitize(table())
    assert sanitize(table()) != sanitize(table(status="finished"))
    assert sanitize(table()) != sanitize(table(code="137"))


def test_wait_progress_display_is_hidden_but_printed_summaries_are_not():
    progress, final = "etl running · 0.1 s · loading data.csv", "etl failed (exit 1) after 0.3 s"
    assert sanitize(progress) == sanitize(final) != sanitize("other failed (exit 1) after 0.3 s")
    printed = "etl failed (exit 1) after 0.3 s\n"  # %job run/stop/follow print lines: kept
    assert sanitize(printed) == "etl failed (exit 1) after <DURATION>\n"
    assert sanitize(printed) != sanitize("etl failed (exit 2) after 0.3 s\n")
    assert sanitize("sleeper running (pid 4121)\n") == sanitize("sleeper running (pid 100234)\n")


def test_record_displays_differ_only_by_what_changes_per_run():
    def record(status="finished", exit_code=0, pid=4121, start=datetime(2026, 1, 2, tzinfo=timezone.utc)):
        demo = f"/tmp/nodejobs-demo-{pid:08d}"  # mkdtemp's suffix: 8 characters
        return JobRecord(
            self_id="hello", status=status, command="sleep 1", shell=False, cwd=demo, dirname=demo,
            logdir=f"{demo}/logs", logfile="hello", last_pid=pid, pid_start=pid * 7, supervisor_pid=pid - 1,
            supervisor_start=pid * 7, boot_id=f"{pid:08x}-0000-0000-0000-000000000000", started_at=start,
            ended_at=start + timedelta(seconds=pid % 7), last_update=start + timedelta(seconds=9),
            exit_code=exit_code,
        )  # fmt: skip

    later = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    for show in (repr, JobRecord._repr_html_):
        assert sanitize(show(record())) == sanitize(show(record(pid=100345, start=later)))
        assert sanitize(show(record())) != sanitize(show(record(status="failed", exit_code=1)))
        assert "4121" not in sanitize(show(record()))
