"""``import nodejobs`` loads the API only: no face code, no argparse, no pandas, no IPython."""

import json
import subprocess
import sys

HEAVY = ("argparse", "pandas", "nodejobs.faces", "nodejobs_magics", "IPython")


def test_import_nodejobs_loads_no_face_code_argparse_or_pandas():
    probe = "import json, sys, nodejobs; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    assert "nodejobs.jobs" in loaded
    below = tuple(f"{name}." for name in HEAVY)
    assert [name for name in loaded if name in HEAVY or name.startswith(below)] == []
