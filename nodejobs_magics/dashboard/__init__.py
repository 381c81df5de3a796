"""The live dashboard of ``%job watch``: ``JobDashboard`` (widget), its rows (rows) and log pane (logpane)."""

from nodejobs_magics.dashboard.widget import JobDashboard

__all__ = ["JobDashboard"]
