"""Run a command while every core is kept busy, then end the busy loops: ``python scripts/with_busy_cores.py
[--rounds N] -- COMMAND...``. Used to check that the test suite holds under load (its timing must not
matter). Exits with the first non-zero exit status of the rounds, else 0."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="run the command this many times in a row")
    parser.add_argument("--loops", type=int, default=os.cpu_count() or 2, help="busy loops (default: cores)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    loops = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.loops)]
    status = 0
    try:
        for round_number in range(1, args.rounds + 1):
            code = subprocess.call(command)
            print(f"with_busy_cores: round {round_number}/{args.rounds}: exit {code}", flush=True)
            status = status or code
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    return status


if __name__ == "__main__":
    sys.exit(main())
