"""``JobDashboard``: a live ipywidgets table of jobs, a log pane, Stop and Rerun buttons, a status filter.

It refreshes itself on a background thread, so cells keep running while it updates (ipywidgets 8 sends
trait changes made on any thread through the kernel's comm channel). It shows the newest ``max_rows``
jobs. A refresh brings the active jobs up to date and samples their CPU and memory (``Jobs.usage``, which
also records their peak memory), reads only the records changed since the last refresh
(``Jobs.changes``), and, for the selected job, the log bytes written since the last offset: its cost
follows the active and changed jobs, not the history. A widget is written only when its value changed.
Stop and Rerun run on that thread too, so a click never blocks the kernel.

Stable CSS classes, for styling and browser tests (``<id>`` is the job id with characters other than
letters, digits, ``_`` and ``-`` replaced by ``_``): ``nodejobs-dashboard`` (the whole),
``nodejobs-filter``, ``nodejobs-count``, ``nodejobs-message``, ``nodejobs-table``, ``nodejobs-header``,
``nodejobs-row`` and ``nodejobs-row-<id>`` (one row; ``nodejobs-selected`` when its log is shown),
in a row ``nodejobs-id`` (button selecting the job), ``nodejobs-status`` and
``nodejobs-status-<status>`` (its title: the reason, e.g. what a queued job waits for), ``nodejobs-group``,
``nodejobs-exit``, ``nodejobs-pid``, ``nodejobs-started``,
``nodejobs-duration``, ``nodejobs-cpu`` (CPU % while running, CPU time once ended), ``nodejobs-rss``
(resident memory while running, the peak seen once ended), ``nodejobs-command``, ``nodejobs-stop``,
``nodejobs-rerun``; the log pane
``nodejobs-logpane``, ``nodejobs-log-title``, ``nodejobs-stream`` (stdout/stderr) and ``nodejobs-log``.
"""

from __future__ import annotations

import html
import logging
import queue
import threading
from collections.abc import Sequence

import ipywidgets as widgets
from IPython import get_ipython
from IPython.display import display

from nodejobs import Jobs, NodeJobsError
from nodejobs.model.states import STATUSES
from nodejobs.report.usage import JobUsageDict
from nodejobs.report.wording import summary
from nodejobs_magics.dashboard.logpane import LogPane
from nodejobs_magics.dashboard.rows import CELLS, JobRow, cell
from nodejobs_magics.dashboard.window import JobWindow
from nodejobs_magics.display import set_value

log = logging.getLogger(__name__)

FILTERS = ("all", "active", "ended", *STATUSES)
_CLOSE = object()


class JobDashboard(widgets.VBox):
    """A live view of the jobs of ``jobs``; without one it opens its own ``Jobs()``, closed by ``close()``.

    ``%job watch`` passes the kernel's ``Jobs`` and closes the dashboard when that closes.

    ``job_ids`` limits it to those jobs. It refreshes every ``refresh_interval`` seconds on its own
    thread until ``close()``. ``rows`` maps job id to ``JobRow``; ``select(job_id)`` picks the job whose
    output the log pane follows.
    """

    def __init__(
        self,
        jobs: Jobs | None = None,
        job_ids: Sequence[str] | None = None,
        *,
        refresh_interval: float = 1.0,
        log_lines: int = 40,
        max_rows: int = 100,
        status: str = "all",
        grace: float | None = None,
    ) -> None:
        self._owns_jobs = jobs is None
        self.jobs = Jobs() if jobs is None else jobs
        self.job_ids = list(job_ids) if job_ids else None
        self.refresh_interval = refresh_interval
        self.max_rows = max_rows
        self.grace = grace
        self.rows: dict[str, JobRow] = {}
        self.selected: str | None = None
        self.window = JobWindow(self.jobs, self.job_ids, max_rows)
        self.status_filter = widgets.Dropdown(
            options=FILTERS, value=status, description="status", layout=widgets.Layout(width="14em")
        )
        self.status_filter.add_class("nodejobs-filter")
        self.count_label = widgets.HTML()
        self.count_label.add_class("nodejobs-count")
        self.message = widgets.HTML()
        self.message.add_class("nodejobs-message")
        title = widgets.HTML(f"<b>nodejobs</b> <code>{html.escape(self.jobs.db_path)}</code>")
        title.add_class("nodejobs-title")
        self._header = widgets.HBox(
            [cell("nodejobs-head", "11em", "<b>id</b>"), cell("nodejobs-head", "7.5em", "<b>status</b>")]
            + [cell("nodejobs-head", width, f"<b>{head}</b>") for _, head, width in CELLS]
            + [cell("nodejobs-head", "auto", "<b>command</b>")]
        )
        self._header.add_class("nodejobs-header")
        self.table = widgets.VBox([self._header])
        self.table.add_class("nodejobs-table")
        self.log_pane = LogPane(log_lines)
        self._top = widgets.HBox([title, self.status_filter, self.count_label])
        super().__init__([self._top, self.table, self.message, self.log_pane.box])
        self.add_class("nodejobs-dashboard")
        self._lock = threading.RLock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._shown_in: int | None = None
        self.status_filter.observe(lambda _: self.refresh(), "value")
        self.log_pane.stream.observe(lambda _: self._show_log(), "value")
        if self.job_ids and len(self.job_ids) == 1:
            self.selected = self.job_ids[0]
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="nodejobs-dashboard", daemon=True)
        self._thread.start()

    # -- public ----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def refresh(self) -> None:
        """Bring the table and the log pane up to date now (the thread also does this on its own)."""
        with self._lock:
            if self._closed:
                return
            used = self.jobs.usage()  # also brings the active jobs' records up to date
            changed = self.window.update(self.status_filter.value)
            if self.selected is not None and self._gone(self.selected):
                self.selected = None
            shown, total = len(self.window.records), self.window.total
            count = f"{shown:,} jobs" if shown == total else f"{shown:,} of {total:,} jobs"
            set_value(self.count_label, count)  # first: whoever sees the new rows sees their count
            self._show_rows(changed, used)
            if self.selected is None and self.window.records:
                self.select(next(iter(self.window.records)))
            elif self.selected is not None:
                current = self.window.records.get(self.selected) or self.jobs.get_status(self.selected)
                self.log_pane.show(self.jobs, current)
            else:
                self.log_pane.show(self.jobs, None)

    def _show_rows(self, changed: set[str], used: JobUsageDict) -> None:
        """One row per job of the window, in its order; only new, changed and active rows are written."""
        for job_id in [i for i in self.rows if i not in self.window.records]:
            self.rows.pop(job_id).close()
        for job_id, record in self.window.records.items():
            if job_id not in self.rows:
                self.rows[job_id] = JobRow(job_id, self.select, self._on_stop, self._on_rerun)
                self.rows[job_id].select(job_id == self.selected)
                changed.add(job_id)
            if job_id in changed or record.is_active:  # an ended, unchanged row shows the same
                self.rows[job_id].show(record, used.get(job_id))
        self.rows = {job_id: self.rows[job_id] for job_id in self.window.records}  # in table order
        boxes = (self._header, *(row.box for row in self.rows.values()))
        if self.table.children != boxes:
            self.table.children = boxes

    def _gone(self, job_id: str) -> bool:
        """Whether ``job_id`` was removed (looked up only when the window was read afresh)."""
        if job_id in self.window.deleted:
            return True
        return self.window.reloaded and self.jobs.get_status(job_id) is None

    def select(self, job_id: str) -> None:
        """Show ``job_id``'s output in the log pane."""
        with self._lock:
            if self.selected in self.rows:
                self.rows[self.selected].select(False)
            self.selected = job_id
            if job_id in self.rows:
                self.rows[job_id].select(True)
            self._show_log()

    def close(self) -> None:
        """Stop refreshing and close every widget (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_CLOSE)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        for row in self.rows.values():
            row.close()
        self.rows.clear()
        self.log_pane.close()
        for widget in (*self._top.children, self._top, self._header, *self._header.children, self.table):
            widget.close()
        self.message.close()
        if self._owns_jobs:
            self.jobs.close()
        super().close()

    # -- internals -------------------------------------------------------------------------------

    def _show_log(self) -> None:
        with self._lock:
            if not self._closed:
                record = self.jobs.get_status(self.selected) if self.selected else None
                self.log_pane.show(self.jobs, record)

    def _on_stop(self, job_id: str) -> None:  # on a queued job: it leaves the queue
        self._queue.put(lambda: self.jobs.stop(job_id, self.grace))

    def _on_rerun(self, job_id: str) -> None:
        self._queue.put(lambda: self.jobs.rerun(job_id))

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.refresh_interval)
            except queue.Empty:
                item = None
            if item is _CLOSE:
                return
            try:
                if item is not None:
                    record = item()
                    set_value(self.message, html.escape(summary(record)) if record else "")
                self.refresh()
            except NodeJobsError as exc:
                set_value(self.message, f"<span style='color:#c62828'>{html.escape(str(exc))}</span>")
            except Exception:  # the thread must outlive any one failure
                log.exception("nodejobs dashboard refresh failed")

    def _ipython_display_(self) -> None:
        count = getattr(get_ipython(), "execution_count", None)
        if self._shown_in is not None and self._shown_in == count:
            self._shown_in = None  # ``%job watch`` displayed it already; skip its echo as Out[]
            return
        bundle = self._repr_mimebundle_()
        if bundle:
            display(bundle, raw=True)

    def mark_displayed(self) -> None:
        """Called by ``%job watch`` after displaying: the magic's returned value is not shown twice."""
        self._shown_in = getattr(get_ipython(), "execution_count", None)
