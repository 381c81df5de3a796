"""``%job watch`` in JupyterLab, in headless Chromium, used as a person would use it.

The notebook loads the extension, starts a short job and a long one, and shows the dashboard. The short
job prints a few lines, then waits for a release file the test creates once it has seen the job running
on the page (so "running" is observed without depending on timing), then finishes on its own.
"""

import re
from pathlib import Path

import psutil
import pytest

from nodejobs import Jobs

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
TIMEOUT_MS = 30_000
RELEASE = "release-short"  # in the notebook's directory, the jobs' working directory
CELLS = [
    "%load_ext nodejobs_magics",
    (
        "%%job short\n"
        "for i in 1 2 3; do echo short-line-$i; sleep 0.3; done\n"
        f"while [ ! -e {RELEASE} ]; do sleep 0.1; done\n"
        "echo short-done\n"
    ),
    "%job run --id long -- sleep 300",
    "%job watch",
]


def process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_dashboard_follows_jobs_and_stops_one(lab, page):
    from playwright.sync_api import expect  # here: `-m 'not browser'` runs without playwright

    filename = lab.write_notebook("dashboard", CELLS)

    lab.open_and_run(page, filename)
    lab.wait_cells_ran(page, len(CELLS))

    dashboard = page.locator(".nodejobs-dashboard")
    expect(dashboard).to_be_visible(timeout=TIMEOUT_MS)
    short_row = dashboard.locator(".nodejobs-row-short")
    long_row = dashboard.locator(".nodejobs-row-long")

    # The table shows both job ids, both running.
    expect(short_row.locator(".nodejobs-id")).to_have_text("short")
    expect(long_row.locator(".nodejobs-id")).to_have_text("long")
    expect(short_row.locator(".nodejobs-status")).to_have_text("running")
    expect(long_row.locator(".nodejobs-status")).to_have_text("running")

    # Selecting the short job shows its output in the log pane.
    short_row.locator(".nodejobs-id").click()
    expect(short_row).to_have_class(re.compile(r"\bnodejobs-selected\b"))
    log_pane = dashboard.locator(".nodejobs-logpane")
    expect(log_pane.locator(".nodejobs-log")).to_contain_text("short-line-3", timeout=TIMEOUT_MS)

    # Let it finish; the page follows with no user action.
    (lab.root_dir / RELEASE).touch()
    expect(short_row.locator(".nodejobs-status")).to_have_text("finished", timeout=TIMEOUT_MS)
    expect(short_row.locator(".nodejobs-exit")).to_have_text("0")
    expect(log_pane.locator(".nodejobs-log")).to_contain_text("short-done", timeout=TIMEOUT_MS)
    expect(log_pane.locator(".nodejobs-log")).to_contain_text("short-line-1")

    SCREENSHOT.parent.mkdir(exist_ok=True)
    dashboard.screenshot(path=str(SCREENSHOT))

    # Stop the long job from its row.
    stop = long_row.locator("button.nodejobs-stop")
    expect(stop).to_be_enabled()
    stop.click()
    expect(long_row.locator(".nodejobs-status")).to_have_text("stopped", timeout=TIMEOUT_MS)
    expect(stop).to_be_disabled()

    with Jobs(lab.db_path) as jobs:
        long_job = jobs.get_status("long")
        assert long_job.status == "stopped"
        assert not process_alive(long_job.last_pid)
        assert jobs.get_status("short").status == "finished"
        assert jobs.get_status("short").exit_code == 0
