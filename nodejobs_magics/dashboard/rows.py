"""``JobRow``: the widgets of one job in the dashboard's table, written only where a value changed."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from nodejobs import JobRecord
from nodejobs.model.options import DEFAULT_GROUP
from nodejobs.report.usage import JobUsage, format_bytes
from nodejobs.report.wording import format_duration
from nodejobs_magics.display import format_time, status_html

CELLS = (  # (attribute, header, width)
    ("group", "group", "6em"),
    ("exit_code", "exit", "3.5em"),
    ("pid", "pid", "5.5em"),
    ("started", "started", "8em"),
    ("duration", "duration", "6.5em"),
    ("cpu", "cpu", "4.5em"),
    ("rss", "memory", "5em"),
)


def css_name(job_id: str) -> str:
    """``job_id`` made safe inside a CSS class name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", job_id)


def cell(css_class: str, width: str, value: str = "") -> widgets.HTML:
    """One fixed-width cell of the table, with its CSS class."""
    html_cell = widgets.HTML(
        value, layout=widgets.Layout(width=width, flex="0 0 auto", overflow="hidden", margin="0 4px")
    )
    html_cell.add_class(css_class)
    return html_cell


class JobRow:
    """The widgets of one table row; ``values`` is what they show now."""

    def __init__(
        self, job_id: str, on_select: Callable[[str], None], on_stop: Callable[[str], None],
        on_rerun: Callable[[str], None],
    ) -> None:
        self.job_id = job_id
        self.id_button = widgets.Button(
            description=job_id,
            tooltip="show this job's output",
            layout=widgets.Layout(width="11em", flex="0 0 auto"),
        )
        self.id_button.add_class("nodejobs-id")
        self.status = cell("nodejobs-status", "7.5em")
        self.group, self.exit_code, self.pid, self.started, self.duration, self.cpu, self.rss = (
            cell(f"nodejobs-{'exit' if name == 'exit_code' else name}", width) for name, _, width in CELLS
        )
        self.command = cell("nodejobs-command", "auto")
        self.command.layout.flex = "1 1 0"
        self.command.layout.min_width = "0"
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", layout=widgets.Layout(width="4.5em", flex="0 0 auto")
        )
        self.stop_button.add_class("nodejobs-stop")
        self.rerun_button = widgets.Button(
            description="Rerun", layout=widgets.Layout(width="4.5em", flex="0 0 auto")
        )
        self.rerun_button.add_class("nodejobs-rerun")
        self.id_button.on_click(lambda _: on_select(job_id))
        self.stop_button.on_click(lambda _: on_stop(job_id))
        self.rerun_button.on_click(lambda _: on_rerun(job_id))
        self.box = widgets.HBox(
            [self.id_button, self.status, self.group, self.exit_code, self.pid, self.started, self.duration,
             self.cpu, self.rss, self.command, self.stop_button, self.rerun_button],
            layout=widgets.Layout(align_items="center"),
        )  # fmt: skip
        self.box.add_class("nodejobs-row")
        self.box.add_class(f"nodejobs-row-{css_name(job_id)}")
        self.values: dict[str, Any] = {}

    def show(self, record: JobRecord, used: JobUsage | None = None) -> bool:
        """Write the widgets whose value changed; True if any did."""
        command = html.escape(record.command or "")
        if used is not None:
            cpu, rss = f"{used.cpu_percent:.0f}%", format_bytes(used.rss)
        else:
            cpu, rss = format_duration(record.cpu_time), format_bytes(record.max_rss)
        values = {
            "status": status_html(record.status, record.reason),
            "group": html.escape(record.group or DEFAULT_GROUP),
            "exit_code": "" if record.exit_code is None else str(record.exit_code),
            "pid": "" if record.last_pid is None else str(record.last_pid),
            "started": format_time(record.started_at),
            "duration": format_duration(record.duration),
            "cpu": cpu,
            "rss": rss,
            "command": f"<code title='{command}' style='white-space:nowrap;overflow:hidden;"
            f"text-overflow:ellipsis;display:block'>{command}</code>",
            "stop": not record.is_active,
            "rerun": record.is_active,
        }
        old_status = self.values.get("status_name")
        values["status_name"] = record.status
        changed = [k for k, v in values.items() if self.values.get(k) != v]
        for key in changed:
            if key in ("stop", "rerun"):
                getattr(self, f"{key}_button").disabled = values[key]
            elif key == "status_name":
                with self.status.hold_sync():
                    if old_status:
                        self.status.remove_class(f"nodejobs-status-{old_status}")
                    self.status.add_class(f"nodejobs-status-{record.status}")
            else:
                getattr(self, key).value = values[key]
        self.values = values
        return bool(changed)

    def select(self, selected: bool) -> None:
        if selected:
            self.box.add_class("nodejobs-selected")
        else:
            self.box.remove_class("nodejobs-selected")
        self.id_button.button_style = "info" if selected else ""

    def close(self) -> None:
        for child in self.box.children:
            child.close()
        self.box.close()
