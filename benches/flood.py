#!/usr/bin/env python3
"""Output at pipe speed: `cutover check` running a shell step that prints N lines, journaled,
against the bare pipe `seq 1 N | cat > /dev/null` and against the same pipe into a file that is
then synced to disk (what keeping the output durably costs at least), paired and alternated,
medians. Prints wall
time, CPU time (user + system, children included), peak RSS, the step's own duration as
journaled, and the journal's size after the run (its write-ahead log included) against the
output's. Runs the release binary (built first).

    python3 benches/flood.py [--lines 1000000 10000000] [--runs 5]
"""

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "cutover")
NOWHERE = "postgresql://bench@127.0.0.1:1/bench"


def timed(argv, env=None, shell=False):
    """Wall seconds, CPU seconds and peak RSS (KiB) of one command and its children."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, shell=shell, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, status


def journal_facts(home):
    path = os.path.join(home, "journal.sqlite3")
    size = os.path.getsize(path)
    wal = path + "-wal"
    wal_size = os.path.getsize(wal) if os.path.exists(wal) else 0
    # Summed in SQLite: this process stays small, and the forks it makes for the next runs
    # (whose peak RSS is measured) with it.
    db = sqlite3.connect(path)
    (out_bytes,) = db.execute(
        "SELECT coalesce(sum(length(CAST(output AS BLOB))), 0) FROM events WHERE kind = 'step_output'"
    ).fetchone()
    (data,) = db.execute("SELECT data FROM events WHERE kind = 'step_finished'").fetchone()
    duration = json.loads(data)["duration_ms"] / 1000
    db.close()
    return size, wal_size, out_bytes, duration


def flood(lines, runs):
    work = tempfile.mkdtemp()
    path = os.path.join(work, "runbook.toml")
    with open(path, "w") as f:
        f.write(
            'name = "flood"\n[[sections]]\nid = "s"\ntitle = "S"\n'
            '[[sections.steps]]\nid = "print"\ntitle = "Prints"\nkind = "shell"\n'
            f'command = "seq 1 {lines}"\ntimeout_secs = 600\n'
        )
    expected = sum(len(str(n)) + 1 for n in range(1, lines + 1))
    ours, bare, durable = [], [], []
    sink = os.path.join(work, "out")
    for _ in range(runs):
        home = tempfile.mkdtemp()
        env = dict(os.environ, CUTOVER_HOME=home)
        argv = [BIN, "check", "--runbook", path, "--allow-shell", "--database-url", NOWHERE]
        wall, cpu, rss, status = timed(argv, env=env)
        size, wal, out_bytes, step = journal_facts(home)
        assert out_bytes == expected, f"journaled {out_bytes} of {expected} bytes"
        ours.append((wall, cpu, rss, step, size, wal))
        shutil.rmtree(home, ignore_errors=True)
        bare.append(timed(f"seq 1 {lines} | cat > /dev/null", shell=True))
        durable.append(timed(f"seq 1 {lines} | cat > {sink} && sync {sink}", shell=True))
        os.unlink(sink)
    med = lambda rows, i: statistics.median(r[i] for r in rows)
    o_wall, o_cpu, o_rss, o_step = (med(ours, i) for i in range(4))
    b_wall, b_cpu = med(bare, 0), med(bare, 1)
    size, wal = max(r[4] for r in ours), max(r[5] for r in ours)
    print(f"{lines:,} lines ({expected / 1e6:.1f} MB), median of {runs} alternated pairs:")
    print(f"  cutover check: wall {o_wall:.3f} s (step {o_step:.3f} s), CPU {o_cpu:.3f} s, peak RSS {o_rss / 1024:.1f} MiB")
    d_wall = med(durable, 0)
    print(f"  seq | cat:     wall {b_wall:.3f} s, CPU {b_cpu:.3f} s")
    print(f"  seq | cat > file && sync file (the output kept on disk, as the journal does): wall {d_wall:.3f} s")
    print(f"  ratio cutover / bare: wall {o_wall / b_wall:.2f}x, step {o_step / b_wall:.2f}x, CPU {o_cpu / max(b_cpu, 1e-9):.2f}x")
    print(f"  ratio cutover / durable pipe: wall {o_wall / d_wall:.2f}x, step {o_step / d_wall:.2f}x")
    print(f"  journal {size / 1e6:.1f} MB + log {wal / 1e6:.1f} MB = {(size + wal) / expected:.3f}x the output")
    shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    for lines in args.lines:
        flood(lines, args.runs)


if __name__ == "__main__":
    sys.exit(main())
