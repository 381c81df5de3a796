"""Display helpers shared by the magics and the dashboard: status colours, times, durations, progress."""

from __future__ import annotations

import html
import sys
from datetime import datetime, timezone
from typing import Any

from IPython import get_ipython
from IPython.display import DisplayHandle

from nodejobs.records import JobRecord, JobStatus

S = JobStatus
STATUS_COLOURS = {
    S.c_starting: "#b8860b",
    S.c_running: "#1565c0",
    S.c_stopping: "#b8860b",
    S.c_stopped: "#6d4c41",
    S.c_finished: "#2e7d32",
    S.c_failed: "#c62828",
    S.c_failed_start: "#c62828",
    S.c_failed_stop: "#c62828",
}


def status_html(status: str | None) -> str:
    """The status as a coloured, bold span."""
    colour = STATUS_COLOURS.get(status or "", "#555")
    return f"<span style='color:{colour};font-weight:bold'>{html.escape(status or '?')}</span>"


def format_duration(seconds: float | None) -> str:
    """``4.2 s``, ``3m 05s``, ``2h 07m``; empty for None."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)  # an exit file's mtime may be a tick before the recorded start
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_time(moment: datetime | None) -> str:
    """Local ``HH:MM:SS`` for today, else ``YYYY-MM-DD HH:MM``; empty for None."""
    if moment is None:
        return ""
    local = moment.astimezone()
    if local.date() == datetime.now(timezone.utc).astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def summary(record: JobRecord) -> str:
    """One line about a job: ``train-1 finished (exit 0) after 4.2 s`` or ``train-1 running (pid 41)``."""
    if record.is_active:
        return f"{record.self_id} {record.status} (pid {record.last_pid})"
    text = f"{record.self_id} {record.status}"
    if record.exit_code is not None:
        text += f" (exit {record.exit_code})"
    if record.duration is not None:
        text += f" after {format_duration(record.duration)}"
    if record.reason:
        text += f": {record.reason}"
    return text


def set_value(widget: Any, value: Any) -> None:
    """Write a widget's value only if it changed (so nothing is sent to the browser otherwise)."""
    if widget.value != value:
        widget.value = value


def in_kernel() -> bool:
    """True inside a Jupyter kernel (display updates work), False in a terminal or plain shell."""
    return getattr(get_ipython(), "kernel", None) is not None


class Progress:
    """A status line updated in place: a display in a notebook, a carriage-return line in a terminal."""

    def __init__(self) -> None:
        self._kernel = in_kernel()
        self._handle: DisplayHandle | None = None
        self._last = ""

    def update(self, text: str) -> None:
        if text == self._last:
            return
        if self._kernel:
            if self._handle is None:
                self._handle = DisplayHandle()
                self._handle.display({"text/plain": text}, raw=True)
            else:
                self._handle.update({"text/plain": text}, raw=True)
        else:
            sys.stdout.write("\r" + text.ljust(len(self._last)))
            sys.stdout.flush()
        self._last = text

    def finish(self, text: str) -> None:
        """Show the final line and end the in-place updates."""
        self.update(text)
        if not self._kernel:
            sys.stdout.write("\n")
            sys.stdout.flush()
