"""``python bench/run.py``: this checkout of nodejobs against nodejobs 0.6.2, side by side.

Installs nodejobs 0.6.2 from PyPI into ``bench/.work/upstream-venv`` (both packages are called
``nodejobs``, so they cannot share an environment), then runs ``workload.py`` unchanged under this
Python (the editable install) and under the venv's, alternating the order each round, each time in a
fresh directory outside the repository with no ``PYTHON*`` variables. ``project_only.py`` measures
what 0.6.2 has no equivalent for. Medians of the pooled samples and the ratios project / 0.6.2 go to
``bench/results.md`` and ``bench/results.json``; a missed target gets a profile of our side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import psutil
import report

log = logging.getLogger("bench")

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
VENV = os.path.join(BENCH, ".work", "upstream-venv")
UPSTREAM_VERSION = "0.6.2"
PROFILE_OPS = {
    "run_s": "run",
    "stop_term_s": "stop_term",
    "stop_ignoring_s": "stop_ignoring",
    "supervision_rss_bytes": "memory",
    "list_status_2000_s": "list2000",
}
CALL_TIMEOUT = 600


def clean_env() -> dict[str, str]:
    """This environment without anything that could point an interpreter at another package."""
    drop = ("VIRTUAL_ENV", "NODEJOBS_HOME", "PYENV_VERSION")
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k not in drop}


def installed_version(python: str) -> str | None:
    if not os.path.exists(python):
        return None
    code = "import importlib.metadata as m; print(m.version('nodejobs'))"
    done = subprocess.run(
        [python, "-s", "-c", code], cwd=tempfile.gettempdir(), env=clean_env(), capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_upstream(fresh: bool) -> str:
    """The venv's Python, with nodejobs 0.6.2 installed from the package index."""
    python = os.path.join(VENV, "bin", "python")
    if not fresh and installed_version(python) == UPSTREAM_VERSION:
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    log.info("creating %s with nodejobs==%s", VENV, UPSTREAM_VERSION)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"nodejobs=={UPSTREAM_VERSION}",
        ],
        check=True,
        cwd=tempfile.gettempdir(),
        env=clean_env(),
    )
    if installed_version(python) != UPSTREAM_VERSION:
        raise SystemExit(f"nodejobs {UPSTREAM_VERSION} did not install into {VENV}")
    return python


def kill_leftovers(sessions_file: str) -> int:
    """SIGKILL the sessions a workload noted and left alive (checked by start time); how many."""
    killed = 0
    if not os.path.exists(sessions_file):
        return 0
    with open(sessions_file) as f:
        noted = [json.loads(line) for line in f if line.strip()]
    for entry in noted:
        try:
            if abs(psutil.Process(entry["sid"]).create_time() - entry["created"]) > 0.01:
                continue  # the pid now belongs to someone else
            os.killpg(entry["sid"], signal.SIGKILL)
            killed += 1
        except (psutil.Error, ProcessLookupError):
            continue
    return killed


class Runner:
    """Runs the bench scripts in scratch directories outside the repository, one at a time."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.failures: list[str] = []
        self.calls = 0

    def call(self, python: str, script: str, args: list[str], name: str) -> dict | None:
        self.calls += 1
        work = tempfile.mkdtemp(prefix=f"{name}-", dir=self.scratch)
        out = os.path.join(work, "out.json")
        sessions = os.path.join(self.scratch, f"{self.calls:03d}-{name}.sessions")
        command = [python, "-s", os.path.join(BENCH, script), *args, "--work", work, "--out", out]
        t0 = time.monotonic()
        try:
            done = subprocess.run(
                [*command, "--sessions", sessions], cwd=self.scratch, env=clean_env(),
                capture_output=True, text=True, timeout=CALL_TIMEOUT,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            done = None
        finally:
            leftovers = kill_leftovers(sessions)
        if leftovers:
            log.warning("%s left %d job session(s) running; killed", name, leftovers)
        log.info("%-28s %6.1f s", name, time.monotonic() - t0)
        try:
            if done is None or done.returncode != 0:
                detail = "timed out" if done is None else done.stderr.strip()[-2000:]
                self.failures.append(f"{name}: {detail}")
                log.error("%s failed: %s", name, detail)
                return None
            with open(out) as f:
                return json.load(f)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def machine() -> dict:
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    commit = subprocess.run(
        ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit.stdout.strip() or None,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def check_isolation(impl: dict, expected_dir: str, name: str) -> None:
    if not impl["module"].startswith(expected_dir):
        raise SystemExit(f"{name} workload imported nodejobs from {impl['module']}, not from {expected_dir}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both workloads (default 3)")
    parser.add_argument("--fresh-venv", action="store_true", help="recreate the 0.6.2 venv")
    parser.add_argument("--profile-all", action="store_true", help="profile every target, missed or not")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.monotonic()
    pythons = {"project": sys.executable, "upstream": ensure_upstream(args.fresh_venv)}
    expected = {"project": os.path.join(REPO, "nodejobs"), "upstream": VENV}
    info = {
        "machine": machine(),
        "command": " ".join(["python bench/run.py", *sys.argv[1:]]),
        "rounds": args.rounds,
    }
    samples: dict[str, list[dict]] = {"project": [], "upstream": [], "project_only": []}
    infos: dict[str, list[dict]] = {"project": [], "upstream": [], "project_only": []}
    scratch = tempfile.mkdtemp(prefix="nodejobs-bench-")
    runner = Runner(scratch)
    try:
        records = {impl: os.path.join(scratch, f"records-{impl}") for impl in pythons}
        for r in range(args.rounds):
            order = ["project", "upstream"] if r % 2 == 0 else ["upstream", "project"]
            for phase in ("jobs", "records"):
                for impl in order:
                    args_ = [phase, "--records-dir", records[impl]]
                    result = runner.call(pythons[impl], "workload.py", args_, f"r{r + 1}-{phase}-{impl}")
                    if result:
                        check_isolation(result["impl"], expected[impl], impl)
                        info.setdefault("implementations", {})[impl] = result["impl"]
                        samples[impl].append(result["samples"])
                        infos[impl].append({"round": r + 1, "phase": phase, **result["info"]})
            result = runner.call(pythons["project"], "project_only.py", [], f"r{r + 1}-project-only")
            if result:
                samples["project_only"].append(result["samples"])
                infos["project_only"].append({"round": r + 1, **result["info"]})
        summary = {k: report.summarise(v) for k, v in samples.items()}
        project = {**summary["project"], **summary["project_only"]}
        rows = report.compare(summary["project"], summary["upstream"])
        profiles = {}
        for row in rows:
            op = PROFILE_OPS.get(row["key"])
            if op and (row["met"] is False or args.profile_all):
                result = runner.call(pythons["project"], "profile_ops.py", [op], f"profile-{op}")
                profiles[row["key"]] = result["text"] if result else "(profiling failed)"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    info["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    info["duration_s"] = round(time.monotonic() - started, 1)
    results = {
        **info,
        "comparison": rows,
        "project_only": {k: project.get(k) for k in (r.key for r in report.PROJECT_ROWS)},
        "summary": summary,
        "observed": infos,
        "profiles": profiles,
        "failures": runner.failures,
    }
    with open(os.path.join(BENCH, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    text = report.render(results, project, summary["upstream"])
    with open(os.path.join(BENCH, "results.md"), "w") as f:
        f.write(text)
    print(text)
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())
