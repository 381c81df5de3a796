"""IPython extension for nodejobs: ``%load_ext nodejobs_magics`` gives ``%job``, ``%%job`` and a dashboard.

Loading opens this kernel's ``Jobs`` (one per kernel; its reaper thread records job ends at once);
unloading closes it and every dashboard ``%job watch`` opened. Running jobs are never touched.
"""

from __future__ import annotations

from typing import Any

from nodejobs_magics.completion import MATCHER_ID
from nodejobs_magics.dashboard import JobDashboard
from nodejobs_magics.magics import JobMagics

__all__ = ["JobDashboard", "JobMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%job``/``%%job`` and tab completion; replaces an instance loaded before."""
    _unregister(ipython)
    magics = JobMagics(ipython)
    ipython.register_magics(magics)
    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        completer.custom_matchers.insert(0, magics.matcher())


def unload_ipython_extension(ipython: Any) -> None:
    """Close the dashboards and the reaper thread, and remove the magics and their completion."""
    _unregister(ipython)


def _unregister(ipython: Any) -> None:
    manager = ipython.magics_manager
    magics = manager.registry.pop("JobMagics", None)
    if magics is not None:
        magics.close()
        for kind in ("line", "cell"):
            if getattr(manager.magics[kind].get("job"), "__self__", None) is magics:
                del manager.magics[kind]["job"]
        if magics in ipython.configurables:
            ipython.configurables.remove(magics)
    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        completer.custom_matchers[:] = [
            m for m in completer.custom_matchers if getattr(m, "matcher_identifier", None) != MATCHER_ID
        ]
