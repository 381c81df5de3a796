"""Helpers shared by the reliability tests: polling, process checks, memory peaks, tmpfs mounts, figures."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from polling import pid_alive, wait_until

PY = sys.executable
log = logging.getLogger("nodejobs.reliability")


def run_cli(db: str, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """``python -m nodejobs --db DB ARGS...`` in a subprocess; output decoded, odd bytes kept."""
    return subprocess.run(
        [PY, "-m", "nodejobs", "--db", db, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        errors="surrogateescape",
    )


def start_ticks(pid: int) -> int:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


def this_boot() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def processes_with_env(name: str, value_prefix: str) -> dict[int, str]:
    """Live processes whose environment sets ``name`` to a value starting with ``value_prefix``."""
    found = {}
    needle = f"{name}={value_prefix}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not pid_alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(needle):
                found[int(entry)] = item.split(b"=", 1)[1].decode()
    return found


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class Canary:
    """An unrelated process that writes a line to ``report`` for every signal it catches.

    It runs in its own session, so only a signal aimed at it (or its group) can reach it.
    """

    CODE = (
        "import signal, sys, time\n"
        "report = sys.argv[1]\n"
        "def caught(sig, frame):\n"
        "    with open(report, 'a') as f:\n"
        "        f.write(f'{sig}\\n')\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT):\n"
        "    signal.signal(s, caught)\n"
        "open(sys.argv[2], 'w').close()\n"
        "while True:\n"
        "    time.sleep(3600)\n"
    )

    def __init__(self, tmp: str, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.report = os.path.join(tmp, f"canary-{time.monotonic_ns()}.signals")
        ready = self.report + ".ready"
        self.popen = subprocess.Popen(
            [PY, "-c", self.CODE, self.report, ready, *extra_args],
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        wait_until(lambda: os.path.exists(ready), 20, message="the canary process to start")
        self.pid = self.popen.pid

    def signals(self) -> list[str]:
        try:
            with open(self.report) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def alive(self) -> bool:
        return self.popen.poll() is None

    def close(self) -> None:
        self.popen.kill()
        self.popen.wait()


@contextlib.contextmanager
def peak_rss_growth() -> Iterator[dict[str, int]]:
    """Measure how far this process's resident memory peaks above its level at entry (bytes).

    Resets the kernel's high-water mark (``/proc/self/clear_refs``) so earlier peaks do not hide growth.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    result = {"before": _status_kb("VmRSS") * 1024, "growth": 0}
    yield result
    result["growth"] = _status_kb("VmHWM") * 1024 - result["before"]


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


@contextlib.contextmanager
def mounted(target: str, *options: str, fstype: str | None = "tmpfs", source: str = "tmpfs") -> Iterator[str]:
    """Mount something on ``target`` (root only) and always unmount it afterwards."""
    os.makedirs(target, exist_ok=True)
    argv = ["mount", *(["-t", fstype] if fstype else []), *options, source, target]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount ({' '.join(argv)}): {done.stderr.strip()}")
    try:
        yield target
    finally:
        deadline = time.monotonic() + 10  # a process of the test may still be closing its files
        while subprocess.run(["umount", target], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                log.warning("%s is still busy; unmounting it lazily", target)
                subprocess.run(["umount", "-l", target], check=False)
                break
            time.sleep(0.1)


@contextlib.contextmanager
def read_only(directory: str) -> Iterator[str]:
    """Make ``directory`` read-only for everyone, root included, with a read-only bind mount."""
    with mounted(directory, "--bind", fstype=None, source=directory):
        subprocess.run(["mount", "-o", "remount,ro,bind", directory], check=True)
        yield directory


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the storage fault tests need root (to mount tmpfs and read-only bind mounts)")


def figure(name: str, text: str, capsys: pytest.CaptureFixture | None = None) -> None:
    """Report a measured figure (shown in the test output, and logged)."""
    log.info("figure %s: %s", name, text)
    line = f"\n[reliability figure] {name}: {text}"
    if capsys is None:
        print(line)
        return
    with capsys.disabled():
        print(line)


def stop_all(jobs: Any) -> None:
    """Stop every active job of a ``Jobs`` (clean-up)."""
    for record in jobs.list_status().values():
        if record.is_active:
            jobs.stop(record.self_id, grace=0.2)


TRIED: dict[str, int] = {}


def count_tried(name: str) -> None:
    """Count one hostile input of kind ``name`` (the figures report these)."""
    TRIED[name] = TRIED.get(name, 0) + 1


def inside(path: str, directory: str) -> bool:
    """Whether ``path`` (symlinks resolved) lies in ``directory``."""
    real = os.path.realpath(directory)
    return os.path.commonpath([os.path.realpath(path), real]) == real


def tree(root: str) -> set[str]:
    """Every file and directory under ``root``."""
    found = set()
    for parent, dirs, files in os.walk(root):
        found |= {os.path.join(parent, name) for name in dirs + files}
    return found
