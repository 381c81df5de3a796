"""Fixtures for browser tests: a real JupyterLab server and headless Debian Chromium driven by Playwright.

Install what they need with ``scripts/ci_browser_setup.sh`` (apt ``chromium``, pip ``jupyterlab``
and ``playwright``); Playwright drives ``/usr/bin/chromium`` and never downloads a browser.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest

from nodejobs import Jobs

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--headless",
]
SERVER_START_TIMEOUT = 60.0
UI_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_LAB_SETTINGS = {
    # No news or update checks: there is no network here, and no toast over the page.
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # Start the notebook's own kernel without asking ("Select Kernel" dialog otherwise, at times).
    "notebook-extension/tracker": {"autoStartDefaultKernel": True},
}


def _write_lab_settings(settings_dir: Path) -> None:
    for name, values in _LAB_SETTINGS.items():
        path = settings_dir / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class LabServer:
    """A running JupyterLab: its URL, token, notebook root and the nodejobs database its kernels use."""

    def __init__(self, base: Path) -> None:
        self.root_dir = base / "root"
        self.db_path = str(base / "nodejobs-db")
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None
        self._base = base

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.root_dir.mkdir(parents=True)
        runtime, data, config = (self._base / d for d in ("runtime", "data", "config"))
        settings, workspaces = self._base / "lab-settings", self._base / "lab-workspaces"
        _write_lab_settings(settings)
        env = dict(
            os.environ,
            NODEJOBS_HOME=self.db_path,
            JUPYTER_RUNTIME_DIR=str(runtime),
            JUPYTER_DATA_DIR=str(data),
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_PLATFORM_DIRS="1",
        )
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.news_url=",
        ]  # fmt: skip
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=self.root_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {self.proc.returncode}:\n{self.server_log()}")
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab silent for {SERVER_START_TIMEOUT} s:\n{self.server_log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Shut kernels down, stop jobs left running, then end the server's process group."""
        if self.proc is None:
            return
        try:
            self.shutdown_kernels()
        except (urllib.error.URLError, OSError) as exc:
            log.warning("could not shut kernels down through the API: %s", exc)
        self._stop_leftover_jobs()
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Kernels run in sessions of their own: make sure none outlives the server.
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=5)

    def _stop_leftover_jobs(self) -> None:
        if not os.path.isdir(self.db_path):
            return
        with Jobs(self.db_path) as jobs:
            for record in jobs.list_status().values():
                if record.is_active:
                    jobs.stop(record.self_id, grace=0.5)

    # -- REST API --------------------------------------------------------------------------------
    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    # -- notebooks -------------------------------------------------------------------------------
    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a Python 3 notebook of code cells into the root; returns its file name."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        filename = f"{name}.ipynb"
        nbformat.write(nb, self.root_dir / filename)
        return filename

    def notebook_url(self, filename: str) -> str:
        """The notebook in a workspace of its own, so no tab of an earlier test is restored beside it."""
        workspace = re.sub(r"[^A-Za-z0-9_-]", "_", filename)
        return f"{self.url}/lab/workspaces/{workspace}/tree/{filename}?token={self.token}"

    def open_and_run(self, page, filename: str) -> None:
        """Open ``filename`` in JupyterLab, wait for its kernel, then Run > Run All Cells from the menu."""
        from playwright.sync_api import expect

        page.goto(self.notebook_url(filename))
        expect(page.locator(".jp-NotebookPanel .jp-Notebook")).to_be_visible(timeout=UI_TIMEOUT_MS)
        # The status bar describes the current notebook; it says "No Kernel | Idle" before the kernel
        # starts, so wait for the real kernel, connected.
        status_bar = page.locator(".jp-StatusBar-Widget")
        expect(status_bar.get_by_text(filename, exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
        kernel_idle = status_bar.get_by_text(re.compile(r"^Python 3.* \| Idle$"))
        expect(kernel_idle).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.locator(".jp-Dialog")).to_have_count(0)
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()

    @staticmethod
    def wait_cells_ran(page, count: int) -> None:
        """Wait until the first ``count`` code cells show an execution count."""
        from playwright.sync_api import expect

        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
        for index in range(count):
            expect(prompts.nth(index)).to_have_text(re.compile(r"\[\d+\]:"), timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[LabServer]:
    """A JupyterLab server on 127.0.0.1 with a token; its kernels use a temporary nodejobs database."""
    server = LabServer(tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """Headless Debian Chromium (never a downloaded one), fresh profile, driven by Playwright's sync API."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: run scripts/ci_browser_setup.sh (or deselect: -m 'not browser')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1600, "height": 1000},
        )
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context
        finally:
            context.close()


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def page(request, browser_context, lab):
    """A new browser tab; after the test it is closed and the kernels it started are shut down.

    When the test fails, a screenshot of the whole page and the server log's end are logged for diagnosis.
    """
    tab = browser_context.new_page()
    try:
        yield tab
    finally:
        if request.node.stash.get(_CALL_FAILED, False):
            shot = lab.log_path.with_name(f"{request.node.name}-failure.png")
            tab.screenshot(path=str(shot), full_page=True)
            log.error("page at failure: %s\nJupyterLab log (end):\n%s", shot, lab.server_log())
        tab.close()
        lab.shutdown_kernels()
