"""``python -m nodejobs.backends.leftovers ...``: the leftovers step under its name of earlier versions.

Supervisors started by an earlier nodejobs exec this when their job ends; it is
``python -m nodejobs.backends.supervisor.leftovers``."""

import sys

from nodejobs.backends.supervisor.leftovers import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
