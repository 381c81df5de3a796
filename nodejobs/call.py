"""``python -m nodejobs.call CALL_FILE``: a function job's program under its name of earlier versions.

Jobs queued or rerun by an earlier nodejobs run this; it is ``python -m nodejobs.functions``
(``nodejobs.functions.__main__``)."""

import sys

from nodejobs.functions.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
