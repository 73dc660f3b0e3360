"""Long fuzzing run (not part of the regular suite): ``python benchmarks/fuzz.py --minutes 10``.

Reruns the property tests marked ``fuzz`` (the map decoder on arbitrary and mutated image
bytes, as raw bytes and base64; the script-argument parser on arbitrary JSON-like arguments)
under the hypothesis profile ``fuzz`` (5000 examples a test, fresh random seeds every round)
until the time budget is spent. Stops at the first failure, which pytest prints minimised.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, HYPOTHESIS_PROFILE="fuzz")
    deadline, rounds, started = time.monotonic() + args.minutes * 60, 0, time.monotonic()
    while time.monotonic() < deadline:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "fuzz", "-p", "no:cacheprovider"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        rounds += 1
        if result.returncode != 0:
            print(result.stdout[-8000:], result.stderr[-2000:])
            print(f"FAILED in round {rounds}")
            return 1
        summary = result.stdout.strip().splitlines()[-1]
        print(f"round {rounds}: {summary} ({time.monotonic() - started:.0f} s)", flush=True)
    print(f"fuzzing: {rounds} rounds in {time.monotonic() - started:.0f} s, no failure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
