#!/usr/bin/env python3
"""How long `cutover demo` takes to have its database ready (the wizard opens right after).

Usage:  python3 benches/demo_start.py [--runs 3]

Builds the release binary, then starts `cutover demo --print-url` --runs times, one after
another, and times each from the start of the process to the URL on its stdout (initdb, TLS,
the previous release's two migrations and 200,000 summaries / 500,000 usage events loaded with
their keys and indexes). Prints each run and the median; stops the demo with Ctrl-C each time.
Nothing here asserts on time: it prints figures for a person (and the closing note).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "cutover")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    times = []
    for run in range(args.runs):
        home = tempfile.mkdtemp(prefix="cutover-bench-")
        env = dict(os.environ, CUTOVER_HOME=home)
        started = time.perf_counter()
        demo = subprocess.Popen([BINARY, "demo", "--print-url"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        url = demo.stdout.readline().strip()
        elapsed = time.perf_counter() - started
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
        if not url:
            sys.exit("the demo did not start")
        times.append(elapsed)
        print(f"run {run + 1}: database ready in {elapsed:.1f}s")
    print(f"median: {statistics.median(times):.1f}s over {len(times)} runs")


if __name__ == "__main__":
    main()
