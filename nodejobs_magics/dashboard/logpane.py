"""``LogPane``: the dashboard's view of one job's output, following new bytes from the last offset."""

from __future__ import annotations

import html
import os

import ipywidgets as widgets

from nodejobs import JobNotFoundError, JobRecord, Jobs
from nodejobs.report.wording import summary
from nodejobs.store import files as logs
from nodejobs_magics.display import set_value


class LogPane:
    """The selected job's output, last ``lines`` lines, following new bytes from the last offset."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.window = max(64 * 1024, lines * 1024)  # bytes read at most per refresh
        self.title = widgets.HTML()
        self.title.add_class("nodejobs-log-title")
        self.stream = widgets.ToggleButtons(options=[("stdout", "out"), ("stderr", "err")], value="out")
        self.stream.style.button_width = "5em"
        self.stream.add_class("nodejobs-stream")
        self.text = widgets.HTML(self._render(""))
        self.text.add_class("nodejobs-log")
        self.box = widgets.VBox([widgets.HBox([self.title, self.stream]), self.text])
        self.box.add_class("nodejobs-logpane")
        self.buffer = ""
        self.offset = 0
        self._source: tuple | None = None

    def show(self, jobs: Jobs, record: JobRecord | None) -> None:
        """Bring the pane up to date with ``record`` (None clears it), reading only new bytes."""
        if record is None:
            self._source = None
            set_value(self.title, "<i>no job selected</i>")
            set_value(self.text, self._render(""))
            return
        try:
            path = jobs.log_path(record, self.stream.value)
        except JobNotFoundError:  # removed since it was listed
            return self.show(jobs, None)
        source = (record.self_id, record.started_at, path)
        if source != self._source:  # another job, stream or run: start again from the end
            self._source, self.offset, self.buffer = source, 0, ""
        name = "stdout" if self.stream.value == "out" else "stderr"
        set_value(self.title, f"<b>{html.escape(summary(record))}</b> · {name}, last {self.lines} lines")
        text = self._read(path)
        if text:
            self.buffer = "\n".join((self.buffer + text).split("\n")[-self.lines - 1 :])
        set_value(self.text, self._render(self.buffer))

    def _read(self, path: str) -> str:
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return ""
        if size < self.offset:  # replaced by a rerun
            self.offset, self.buffer = 0, ""
        skipped = size - self.offset > self.window
        if skipped:  # far behind: only the end matters
            self.offset, self.buffer = size - self.window, ""
        text, self.offset = logs.read_from(path, self.offset, limit=self.window)
        if skipped:
            text = text.split("\n", 1)[1] if "\n" in text else ""
        return text

    @staticmethod
    def _render(text: str) -> str:
        shown = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
        return (
            "<pre style='max-height:24em;overflow:auto;margin:0;padding:4px;background:#f7f7f7;"
            f"font-size:12px;white-space:pre-wrap'>{html.escape(shown)}</pre>"
        )

    def close(self) -> None:
        for widget in (self.title, self.stream, self.text, *self.box.children, self.box):
            widget.close()
