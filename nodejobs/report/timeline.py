"""A timeline picture of jobs: one horizontal bar per job from its start to its end (to now while it
runs), coloured by status (``states.STATUS_COLOURS``), labelled by id. Needs matplotlib (``[plot]``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from nodejobs.errors import MissingExtraError
from nodejobs.model.records import JobRecord
from nodejobs.model.states import STATUS_COLOURS, UNKNOWN_COLOUR

MISSING_MATPLOTLIB = "the timeline needs matplotlib: pip install 'nodejobs[plot]'"


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError(MISSING_MATPLOTLIB) from None
    return plt


def draw_timeline(records: Iterable[JobRecord], title: str = "jobs") -> Any:
    """A matplotlib ``Figure`` with one bar per record that has started, oldest at the top.

    Each bar is ``ax.patches``' one of its job; the legend names the statuses shown.
    """
    plt = _pyplot()
    from matplotlib.dates import date2num
    from matplotlib.patches import Patch

    now = datetime.now(timezone.utc)
    shown = sorted((r for r in records if r.started_at is not None), key=lambda r: r.started_at)
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.32 * max(len(shown), 1)))
    for row, record in enumerate(shown):
        end = record.ended_at or (now if record.is_active else record.last_update) or record.started_at
        start = date2num(record.started_at)
        width = max(date2num(max(end, record.started_at)) - start, 1e-9)
        colour = STATUS_COLOURS.get(record.status or "", UNKNOWN_COLOUR)
        ax.barh(row, width, left=start, height=0.6, color=colour)
    ax.set_yticks(range(len(shown)), [r.self_id for r in shown])
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.xaxis_date()
    ax.set_xlabel("time (UTC)")
    ax.set_title(title)
    statuses = sorted({r.status or "?" for r in shown})
    if statuses:
        handles = [Patch(color=STATUS_COLOURS.get(s, UNKNOWN_COLOUR), label=s) for s in statuses]
        ax.legend(handles=handles, loc="lower right", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
