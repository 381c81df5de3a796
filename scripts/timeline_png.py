"""Make ``docs/timeline.png``: the timeline of a batch like notebook 02's (real jobs on a throwaway
database: some finish, some fail, two are stopped). Run: ``python scripts/timeline_png.py [OUT]``."""

from __future__ import annotations

import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")

from nodejobs import Jobs

PLAN = {  # job id: (seconds, exit code), as in notebooks/02-dataframe-queries.ipynb
    "prep-a": (0.2, 0),
    "prep-b": (0.5, 0),
    "train-a": (2.0, 0),
    "train-b": (1.1, 1),
    "eval-a": (0.8, 0),
    "eval-b": (1.4, 2),
}
TASK = "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "docs", "timeline.png")


def main(out: str = DEFAULT_OUT) -> int:
    with tempfile.TemporaryDirectory(prefix="nodejobs-timeline-") as db, Jobs(db) as jobs:
        for job_id, (seconds, code) in PLAN.items():
            jobs.run([sys.executable, "-c", TASK, str(seconds), str(code)], job_id)
        for job_id in ("serve-a", "serve-b"):
            jobs.run(["sleep", "300"], job_id)
        for job_id in PLAN:
            jobs.wait(job_id, timeout=60)
        for job_id in ("serve-a", "serve-b"):
            jobs.stop(job_id)
        fig = jobs.timeline()
        fig.savefig(out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
