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

from nodejobs import JobRecord, Jobs, NodeJobsError
from nodejobs.model.states import STATUSES
from nodejobs.report.wording import summary
from nodejobs_magics.dashboard.logpane import LogPane
from nodejobs_magics.dashboard.rows import CELLS, JobRow, cell
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
        self._shown: dict[str, JobRecord] = {}  # the newest max_rows jobs the filter lets through
        self._complete = False  # whether _shown holds every job the filter lets through
        self._loaded: str | None = None  # the filter _shown was read for (None: not read yet)
        self._seq = 0  # the change number _shown is up to date with
        self._total = 0
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
            changed = self._update_shown()
            for job_id in [i for i in self.rows if i not in self._shown]:
                self.rows.pop(job_id).close()
            for job_id, record in self._shown.items():
                if job_id not in self.rows:
                    self.rows[job_id] = JobRow(job_id, self.select, self._on_stop, self._on_rerun)
                    self.rows[job_id].select(job_id == self.selected)
                    changed.add(job_id)
                if job_id in changed or record.is_active:  # an ended, unchanged row shows the same
                    self.rows[job_id].show(record, used.get(job_id))
            self.rows = {job_id: self.rows[job_id] for job_id in self._shown}  # in table order
            boxes = (self._header, *(row.box for row in self.rows.values()))
            if self.table.children != boxes:
                self.table.children = boxes
            shown = len(self._shown)
            set_value(self.count_label, f"{shown:,} of {self._total:,} jobs" if shown != self._total
                      else f"{shown:,} jobs")  # fmt: skip
            if self.selected is None and self._shown:
                self.select(next(iter(self._shown)))
            elif self.selected is not None:
                current = self._shown.get(self.selected) or self.jobs.get_status(self.selected)
                self.log_pane.show(self.jobs, current)
            else:
                self.log_pane.show(self.jobs, None)

    def _update_shown(self) -> set[str]:
        """Bring ``_shown`` up to date from the records changed since the last refresh; the ids changed."""
        wanted = self.status_filter.value
        if self._loaded != wanted:
            self._reload(wanted)
            return set(self._shown)
        news = self.jobs.changes(self._seq)
        self._seq, self._total = news.number, news.total
        for job_id in news.deleted:
            self._shown.pop(job_id, None)
            if job_id == self.selected:
                self.selected = None
        for record in news.changed:
            if self._wanted(record, wanted):
                self._shown[record.self_id] = record
            else:
                self._shown.pop(record.self_id, None)
        if len(self._shown) < self.max_rows and not self._complete:  # some went: read what follows them
            self._reload(wanted)
            return set(self._shown)
        if not news.changed:
            return set()
        ordered = sorted(self._shown.values(), key=_newest_first)[: self.max_rows]
        self._complete = self._complete and len(ordered) == len(self._shown)
        self._shown = {r.self_id: r for r in ordered}
        return {r.self_id for r in news.changed if r.self_id in self._shown}

    def _reload(self, wanted: str) -> None:
        """Read the newest ``max_rows`` jobs the filter lets through (one query, limited in SQL)."""
        news = self.jobs.changes(2**62)  # nothing is newer: only the change number and the total
        self._seq, self._total, self._loaded = news.number, news.total, wanted
        status = None if wanted == "all" else wanted
        if self.job_ids is not None:
            found = [self.jobs.get_status(i) for i in self.job_ids]
            records = [r for r in found if r is not None and self._wanted(r, wanted)]
        else:
            records = list(self.jobs.list_status(status=status, order="newest", limit=self.max_rows).values())
        ordered = sorted(records, key=_newest_first)[: self.max_rows]
        self._complete = len(records) < self.max_rows
        self._shown = {r.self_id: r for r in ordered}
        if self.selected is not None and self.jobs.get_status(self.selected) is None:
            self.selected = None

    def _wanted(self, record: JobRecord, wanted: str) -> bool:
        if self.job_ids is not None and record.self_id not in self.job_ids:
            return False
        if wanted in ("active", "ended"):
            return record.is_active == (wanted == "active")
        return wanted == "all" or record.status == wanted

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


def _newest_first(record: JobRecord) -> tuple[float, str]:
    started = record.started_at.timestamp() if record.started_at else float("-inf")
    return -started, record.self_id
