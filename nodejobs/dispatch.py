"""``python -m nodejobs.dispatch DB_PATH``: the queue step under its name of earlier versions.

Supervisors started by an earlier nodejobs call this when their job ends, maybe days after an upgrade;
it is ``python -m nodejobs.queue`` (``nodejobs.queue.__main__``)."""

import sys

from nodejobs.queue.__main__ import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
