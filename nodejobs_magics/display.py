"""Display helpers shared by the magics and the dashboard: status colours, times, progress.

The words (``summary``, ``format_duration``) are ``nodejobs.report.wording``'s: one wording on every face.
"""

from __future__ import annotations

import html
import sys
from datetime import datetime, timezone
from typing import Any

from IPython import get_ipython
from IPython.display import DisplayHandle

from nodejobs.model.states import STATUS_COLOURS, UNKNOWN_COLOUR, JobStatus

__all__ = ["Progress", "format_time", "in_kernel", "set_value", "status_html"]


def status_html(status: str | None, reason: str | None = None) -> str:
    """The status as a coloured, bold span; a queued or pending job's reason follows it, small."""
    colour = STATUS_COLOURS.get(status or "", UNKNOWN_COLOUR)
    title = f" title='{html.escape(reason)}'" if reason else ""
    text = f"<span style='color:{colour};font-weight:bold'{title}>{html.escape(status or '?')}</span>"
    if status in (JobStatus.c_queued, JobStatus.c_pending) and reason:
        text += f"<br><small class='nodejobs-reason'>{html.escape(reason)}</small>"
    return text


def format_time(moment: datetime | None) -> str:
    """Local ``HH:MM:SS`` for today, else ``YYYY-MM-DD HH:MM``; empty for None."""
    if moment is None:
        return ""
    local = moment.astimezone()
    if local.date() == datetime.now(timezone.utc).astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


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
