"""``python -m nodejobs.cli``: the ``nodejobs`` command under its module name of earlier versions
(now ``nodejobs.faces.cli``; ``python -m nodejobs`` is the same command)."""

import sys

from nodejobs.faces.cli import main

if __name__ == "__main__":
    sys.exit(main())
