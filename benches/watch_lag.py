#!/usr/bin/env python3
"""`cutover watch`: the observer's lag behind the run it follows, and what it costs while idle.

Usage:  python3 benches/watch_lag.py [--events 1000] [--idle 10] [--postgres]

With --postgres the journal is in PostgreSQL (`--journal-url`: a database `journal_bench` on the
demo's server, never the target's), and the watcher follows through LISTEN/NOTIFY instead of
looking at the journal's files.

1. Builds the release binary and starts `cutover demo --print-url` (the live panels' database).
2. The operator: `cutover check` of a runbook whose one shell step waits 2 s, then prints
   --events lines 5 ms apart (each a journaled output event; the recorder batches output for at
   most 50 ms, as it does in production).
3. The observer: `cutover watch RUN` on a pseudo-terminal of its own (120x40), started as soon
   as the run is in the journal, with its log at debug level. Each batch it reads is logged with
   the lag of its oldest and newest event: from the event's recording time to the moment the
   watcher has it (it draws next, in the same loop turn).
4. Prints p50/p99/max of the oldest event's lag per batch (an upper bound for every event of the
   batch) and of the newest's, over the batches after the first (the first is the catch-up).
5. Idle: once the run has ended, bytes written to the observer's terminal and CPU time it used
   over --idle seconds, and the journal reads it made (batches logged: none expected).

Nothing here asserts on time: it prints figures for a person (and the closing note).
"""

import argparse
import os
import pty
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_vs_psql as base  # noqa: E402

RUNBOOK = """name = "watch-bench"
[[sections]]
id = "s"
title = "S"
[[sections.steps]]
id = "lines"
title = "Many lines"
kind = "shell"
timeout_secs = 600
command = '''
sleep 2
i=0
while [ $i -lt {events} ]; do echo "line $i"; i=$((i + 1)); sleep 0.005; done
'''
"""

LINE = re.compile(r"followed .*oldest_lag_us=(\d+) newest_lag_us=(\d+)")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(fd, seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
        if ready:
            try:
                total += len(os.read(fd, 65536))
            except OSError:
                break
    return total


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    home, env, demo, url = base.start_demo()
    try:
        kind = "SQLite journal, the watcher looks every 100 ms"
        if args.postgres:
            control = re.sub(r"/sightline\b", "/journal_bench", url)
            subprocess.run(["psql", url, "-qc", "CREATE DATABASE journal_bench"], check=True)
            env = dict(env, CUTOVER_JOURNAL_URL=control)
            kind = "PostgreSQL journal, the watcher woken by LISTEN/NOTIFY"
        folder = tempfile.mkdtemp(prefix="cutover-watch-bench-")
        runbook = os.path.join(folder, "runbook.toml")
        with open(runbook, "w") as f:
            f.write(RUNBOOK.format(events=args.events))
        operator = subprocess.Popen([base.BINARY, "--runbook", runbook, "check", "--allow-shell",
                                     "--database-url", url], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        run_id = None
        deadline = time.time() + 30
        while time.time() < deadline:
            listed = subprocess.run([base.BINARY, "runs"], env=env, capture_output=True, text=True)
            run = [line for line in listed.stdout.splitlines() if "watch-bench" in line]
            if run:
                run_id = run[0].split()[0]
                break
            time.sleep(0.01)
        if not run_id:
            sys.exit(f"the operator's run never appeared in the journal: {listed.stdout}{listed.stderr}")
        watch_env = dict(env, CUTOVER_LOG="info,cutover::tui=debug,sqlx=warn", TERM="xterm-256color",
                         COLUMNS="120", LINES="40")
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(base.BINARY, [base.BINARY, "watch", run_id, "--database-url", url], watch_env)
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        # Follow the run while it lasts, reading the terminal so that the watcher never blocks.
        while operator.poll() is None:
            drain(fd, 0.2)
        drain(fd, 2.0)
        log = os.path.join(home, "logs", "cutover.log")
        before = len(open(log).read().splitlines())
        cpu0 = cpu_seconds(pid)
        idle_bytes = drain(fd, args.idle)
        cpu1 = cpu_seconds(pid)
        lines = open(log).read().splitlines()
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        batches = [tuple(int(x) / 1000 for x in m.groups()) for m in map(LINE.search, lines[:before]) if m]
        idle_reads = sum(1 for line in lines[before:] if LINE.search(line))
        if len(batches) < 3:
            sys.exit(f"too few batches logged: {len(batches)}")
        followed = batches[1:]
        oldest = [b[0] for b in followed]
        newest = [b[1] for b in followed]
        print(f"{args.events} output events followed in {len(followed)} batches after the catch-up "
              f"({kind})")
        print(f"oldest event's lag per batch: p50 {percentile(oldest, 50):.0f} ms, "
              f"p99 {percentile(oldest, 99):.0f} ms, max {max(oldest):.0f} ms")
        print(f"newest event's lag per batch: p50 {percentile(newest, 50):.0f} ms, "
              f"p99 {percentile(newest, 99):.0f} ms")
        print(f"idle {args.idle:.0f} s after the run ended: {idle_bytes / args.idle:.0f} bytes/s to the terminal, "
              f"CPU {100 * (cpu1 - cpu0) / args.idle:.2f}%, journal reads {idle_reads}")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


if __name__ == "__main__":
    main()
