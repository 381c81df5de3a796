"""Turn the samples of a bench run into medians, ratios, a Markdown table and the results JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MS, S, MB, PCT, PER_S, US = "ms", "s", "MB", "% of a core", "jobs/s", "µs"
_SCALE = {MS: 1e3, S: 1.0, MB: 1 / 1e6, PCT: 100.0, PER_S: 1.0, US: 1e6}


@dataclass(frozen=True)
class Row:
    """One line of the table: a metric from the samples, shown in ``unit``, with an optional target."""

    key: str
    label: str
    unit: str
    target: float | None = None  # project / upstream must be <= this
    higher_is_better: bool = False


SHARED_ROWS = (
    Row("run_s", "run() of a long-running job", MS, 1 / 100),
    Row("short_e2e_s", "short job: run() until get_status shows it ended", MS),
    Row("stop_term_s", "stop() of a job that exits on SIGTERM", MS, 1 / 20),
    Row("stop_ignoring_s", "stop() of a job that ignores SIGTERM (default grace, see notes)", S, 1 / 20),
    Row("supervision_rss_bytes", "supervision memory per running job, RSS", MB, 1 / 5),
    Row("supervision_pss_bytes", "supervision memory per running job, PSS", MB),
    Row("idle_cpu_supervisors_frac", "idle CPU of the supervisors of 10 running jobs", PCT),
    Row("idle_cpu_host_frac", "idle CPU of the launching process, 10 running jobs", PCT),
    *(Row(f"get_status_{n}_s", f"get_status() with {n:,} records", MS) for n in (100, 1000, 2000, 10000)),
    *(
        Row(f"list_status_{n}_s", f"list_status() of {n:,} records", MS, 1 / 10 if n == 2000 else None)
        for n in (100, 1000, 2000, 10000)
    ),
    Row("insert_10000_s", "jobdb.update_status() of 10,000 records, total (once per bench run)", S),
    Row("throughput_total_s", "50 short jobs launched, then all waited for", S),
    Row("throughput_jobs_per_s", "throughput of those 50 jobs", PER_S, higher_is_better=True),
)

PROJECT_ROWS = (
    Row("dashboard_refresh_cpu_s", "dashboard refresh, 100 jobs (10 running): CPU per refresh", MS),
    Row("dashboard_refresh_wall_s", "dashboard refresh, 100 jobs (10 running): wall per refresh", MS),
    Row(
        "reaper_idle_process_cpu_frac",
        "idle CPU of the launching process (reaper thread), 10 running jobs",
        PCT,
    ),
    Row("reaper_idle_thread_cpu_s", "CPU used by the reaper thread in 3 s idle, 10 running jobs", MS),
    Row("tail_1gb_100_lines_s", "tail(job, 100) of a 1 GiB log", MS),
    Row("run_cpu_bound_s", "run() of a job that computes from its first instant (never blocks)", MS),
)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(samples_by_round: list[dict[str, list[float]]]) -> dict[str, dict]:
    """Per metric: the median of all samples pooled, their count, and each round's median."""
    out: dict[str, dict] = {}
    keys = sorted({k for samples in samples_by_round for k in samples})
    for key in keys:
        rounds = [s[key] for s in samples_by_round if s.get(key)]
        pooled = [v for r in rounds for v in r]
        out[key] = {"median": median(pooled), "n": len(pooled), "round_medians": [median(r) for r in rounds]}
    return out


def ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return "–"
    if ratio == 0:
        return "0"
    if ratio < 1:
        return f"1/{1 / ratio:.0f}" if ratio < 0.5 else f"{ratio:.2f}"
    return f"{ratio:.2f}" if ratio < 10 else f"{ratio:.0f}×"


def value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    shown = value * _SCALE[unit]
    if shown == 0:
        return "0"
    digits = 3 if abs(shown) < 0.1 else 2 if abs(shown) < 10 else 1 if abs(shown) < 100 else 0
    return f"{shown:.{digits}f}"


def compare(project: dict[str, dict], upstream: dict[str, dict]) -> list[dict]:
    """The shared rows with both medians, the ratio and whether the target holds."""
    rows = []
    for row in SHARED_ROWS:
        p = project.get(row.key, {}).get("median")
        u = upstream.get(row.key, {}).get("median")
        ratio = p / u if p is not None and u else None
        met = None
        if row.target is not None and ratio is not None:
            met = ratio <= row.target
        rows.append(
            {"key": row.key, "label": row.label, "unit": row.unit, "project": p, "upstream": u,
             "ratio": ratio, "target": row.target, "met": met}
        )  # fmt: skip
    return rows


def shared_table(rows: list[dict]) -> str:
    lines = [
        "| measurement | unit | project | nodejobs 0.6.2 | project / 0.6.2 | target |",
        "|---|---|--:|--:|--:|---|",
    ]
    for r in rows:
        target = "–" if r["target"] is None else f"≤ 1/{1 / r['target']:.0f}"
        if r["met"] is not None:
            target += " met" if r["met"] else " **missed**"
        lines.append(
            f"| {r['label']} | {r['unit']} | {value_text(r['project'], r['unit'])} | "
            f"{value_text(r['upstream'], r['unit'])} | {ratio_text(r['ratio'])} | {target} |"
        )
    return "\n".join(lines)


def project_table(project: dict[str, dict]) -> str:
    lines = ["| measurement (project only) | unit | project |", "|---|---|--:|"]
    for row in PROJECT_ROWS:
        value = project.get(row.key, {}).get("median")
        lines.append(f"| {row.label} | {row.unit} | {value_text(value, row.unit)} |")
    return "\n".join(lines)


def growth_table(project: dict[str, dict], upstream: dict[str, dict]) -> str:
    """Cost per record of list_status, and of get_status relative to 100 records, as history grows."""
    lines = [
        "| records | list_status µs/record, project | 0.6.2 | get_status ms, project | 0.6.2 |",
        "|--:|--:|--:|--:|--:|",
    ]
    for n in (100, 1000, 2000, 10000):
        cells = [f"{n:,}"]
        for side in (project, upstream):
            value = side.get(f"list_status_{n}_s", {}).get("median")
            cells.append("–" if value is None else f"{value / n * 1e6:.1f}")
        for side in (project, upstream):
            cells.append(value_text(side.get(f"get_status_{n}_s", {}).get("median"), MS))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


GRACE_S = 3.0  # the default of both: Jobs(grace=3.0) here, the fixed per-process wait in 0.6.2

NOTES = """\
- **Method.** `workload.py` is one module run unchanged by both interpreters, through the API both share
  (`Jobs(db_path)`, `run(list, job_id)`, `stop(job_id)`, `get_status`, `list_status`, `job_logs`,
  `jobdb.update_status`), alternating which goes first each round, each in a fresh directory outside the
  repository with no `PYTHON*` variables; the run checks that each side imported its own `nodejobs`.
  Figures are medians of all samples of all rounds (wall clock unless marked CPU); counts and per-round
  medians are in `results.json`. Commands are lists: 0.6.2 accepts nothing else.
- **run().** 0.6.2's `Jobs.run` sleeps 0.5 s unconditionally before it looks at the process, so its
  run() and short-job latency cannot go below 0.5 s. Ours returns as soon as the job has ended or its
  program is blocked waiting on something (as `sleep`, a server or a training loop reading data soon
  is), at most `startup_window` (50 ms) later; statuses never depend on that wait. A job that computes
  from its first instant (never blocks) makes run() wait the whole 50 ms: see `run_cpu_bound_s` in the
  project-only table.
- **stop() and grace.** Both use their defaults. Ours: SIGTERM to the group and tree, SIGKILL after
  `grace` (3 s by default, `Jobs(grace=…)` or `stop(job_id, grace)`), returning as soon as the job is
  gone. 0.6.2's grace is fixed: SIGTERM to each child then the wrapper, waiting up to 3 s each, a process
  group sweep that sleeps 2 s if the group still exists, then an unconditional `sleep(wait_time=1)`.
  For a job that ignores SIGTERM both therefore wait the same 3 s before SIGKILL, and the ratio is
  bound by that grace, not by the implementation: see "time beyond the grace" below.
- **Memory.** Per running `sleep 3600` job: the RSS (and PSS) of every process in the job's session
  except the payload. Ours is one `/bin/sh` blocked in `wait`; 0.6.2's is a Python process
  (`run_job.py`) that polls the payload every 0.1 s and copies its output through two threads. RSS counts
  shared library pages in full; PSS divides them among the processes sharing them.
- **History.** `get_status`/`list_status` are timed on databases of 100 … 10,000 ended-job records
  inserted through `jobdb.update_status`, built once per bench run and reused by later rounds (reads do not
  change them). 0.6.2 stores each record as a JSON blob and filters with `json_extract` (a full scan, also
  on every upsert), and each `get_status`/`list_status` call first scans every process on the machine
  (`psutil.process_iter` with command lines), so its cost also grows with the machine's process count.
- **1 GiB log.** The job's stdout file is replaced by a 1 GiB sparse file whose last 8 MiB are text
  lines; `tail` reads backwards from the end, so only the end is read (page cache warm). Deleted after.
- **Dashboard.** `JobDashboard.refresh()` driven directly (its own timer set to an hour) on a database
  of 100 jobs, 10 of them running: one `list_status` plus the selected job's new log bytes, writing only
  the widgets whose value changed (durations of running jobs change every refresh). Without a kernel the
  widget messages go nowhere, so this is the Python-side cost."""


def _observed(observed: dict[str, list[dict]]) -> str:
    """What each side's stop() returned and whether its processes were gone: correctness, not speed."""
    lines = ["| observed | project | nodejobs 0.6.2 |", "|---|---|---|"]
    checks = (
        ("stop() of a SIGTERM-exiting job returned", "stop_term_returned"),
        ("its processes gone after stop()", "stop_term_session_gone"),
        ("stop() of a SIGTERM-ignoring job returned", "stop_ignoring_returned"),
        ("its processes gone after stop()", "stop_ignoring_session_gone"),
        ("short jobs' final status", "short_final"),
        ("short jobs' output read back intact", "short_output_ok"),
        ("the 50 jobs' final statuses", "throughput_statuses"),
        ("the 50 jobs' output read back intact", "throughput_output_ok"),
    )
    for label, key in checks:
        cells = []
        for impl in ("project", "upstream"):
            seen: set = set()
            for entry in observed.get(impl, []):
                value = entry.get(key)
                if value is not None:
                    seen.update(value if isinstance(value, list) else [value])
            cells.append(", ".join(sorted(str(v) for v in seen)) or "–")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _targets(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if r["target"] is None:
            continue
        if r["ratio"] is None:
            out.append(f"- {r['label']}: not measured (see failures).")
            continue
        verdict = "met" if r["met"] else "**missed**"
        out.append(
            f"- {r['label']}: {ratio_text(r['ratio'])} (target ≤ 1/{1 / r['target']:.0f}) — {verdict}."
        )
        if r["key"] == "stop_ignoring_s" and r["project"] is not None and r["upstream"] is not None:
            p, u = r["project"] - GRACE_S, r["upstream"] - GRACE_S
            beyond = ratio_text(p / u) if u > 0 else "–"
            out.append(
                f"  Both wait a {GRACE_S:.0f} s grace before SIGKILL; time beyond the grace: "
                f"{p * 1e3:.0f} ms here, {u * 1e3:.0f} ms in 0.6.2 ({beyond}). With `stop(job_id, grace=g)` "
                "ours takes g plus that; 0.6.2 cannot shorten its wait."
            )
    return out


def render(results: dict, project: dict[str, dict], upstream: dict[str, dict]) -> str:
    """The whole ``results.md``."""
    m = results["machine"]
    impls = results.get("implementations", {})
    versions = ", ".join(f"{k} {v['version']} ({v['module']})" for k, v in impls.items())
    parts = [
        "# nodejobs benchmark: this project against nodejobs 0.6.2",
        "",
        f"Machine: {m['cores']} cores, {m['cpu']}, {m['memory_gb']} GB RAM, Python {m['python']}, "
        f"{m['os']}. Date: {m['date']}, commit {m['commit']}. Load average at start {m['loadavg_start']}, "
        f"at end {m['loadavg_end']}.",
        "",
        f"Command: `{results['command']}` ({results['rounds']} round(s), {results['duration_s']:.0f} s). "
        f"Implementations: {versions}.",
        "",
        "## Side by side",
        "",
        shared_table(results["comparison"]),
        "",
        "Ratios below 1 mean the project is faster or smaller (for throughput, higher is better).",
        "",
        "## Targets",
        "",
        *_targets(results["comparison"]),
        "",
        "## How the cost grows with history",
        "",
        growth_table(project, upstream),
        "",
        "## Project only (0.6.2 has no equivalent)",
        "",
        project_table(project),
        "",
        "## What each side reported",
        "",
        _observed(results["observed"]),
        "",
        "## Notes",
        "",
        NOTES,
    ]
    if results["profiles"]:
        parts += ["", "## Profiles (our side) of the targets missed in this run", ""]
        for key, text in results["profiles"].items():
            parts += [f"### {key}", "", "```text", text.rstrip(), "```", ""]
    if results["failures"]:
        parts += ["", "## Failures", "", *(f"- `{f[:500]}`" for f in results["failures"])]
    return "\n".join(parts).rstrip() + "\n"
