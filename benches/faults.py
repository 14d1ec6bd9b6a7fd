#!/usr/bin/env python3
"""Faults, measured: what a kill -9 of cutover loses of a step's output, how long a frozen server
(SIGSTOP) holds `cutover check`, and what journaling a flood of output costs against the bare
command. Runs the release binary (built first).

    python3 benches/faults.py [--kills 20] [--runs 5]

1. Lines at risk: `cutover check` runs a step that prints a numbered line every millisecond and
   writes the last number to a file; at a random moment the file is read and cutover gets
   SIGKILL at once. Then the journal is read: printed minus recorded is what was lost.
2. Frozen server: a throwaway cluster, a runbook of five `pg_sleep(30)` checks with a 3 s
   timeout; once two run, the server's processes get SIGSTOP; the time from then to
   `cutover check` exiting.
3. Flood: `cutover check` running `seq 1 1000000` journaled, against `seq 1 1000000 | cat`,
   paired and alternated, medians.
"""

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "cutover")
NOWHERE = "postgresql://bench@127.0.0.1:1/bench"


def runbook(folder, steps):
    path = os.path.join(folder, "runbook.toml")
    with open(path, "w") as f:
        f.write('name = "bench"\n[[sections]]\nid = "s"\ntitle = "S"\n' + steps)
    return path


def shell_step(command):
    return (
        '[[sections.steps]]\nid = "out"\ntitle = "out"\nkind = "shell"\n'
        f"command = '''{command}'''\n"
    )


def journaled_lines(home):
    db = sqlite3.connect(os.path.join(home, "journal.sqlite3"))
    last = 0
    for (output,) in db.execute("SELECT output FROM events WHERE kind = 'step_output'"):
        lines = output.split("\n")[:-1] if output else []
        if lines:
            last = max(last, int(lines[-1]))
    db.close()
    return last


def lines_at_risk(kills):
    lost, rates = [], []
    for _ in range(kills):
        work = tempfile.mkdtemp()
        home = os.path.join(work, "home")
        counter = os.path.join(work, "counter")
        path = runbook(
            work,
            shell_step(
                f'i=0; while :; do i=$((i+1)); echo $i; echo $i > {counter}.tmp; '
                f"mv {counter}.tmp {counter}; sleep 0.001; done"
            ),
        )
        env = dict(os.environ, CUTOVER_HOME=home)
        started = time.monotonic()
        child = subprocess.Popen(
            [BIN, "check", "--runbook", path, "--allow-shell", "--database-url", NOWHERE],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(random.uniform(0.5, 2.0))
        with open(counter) as f:
            printed = int(f.read().strip() or 0)
        child.send_signal(signal.SIGKILL)
        elapsed = time.monotonic() - started
        child.wait()
        time.sleep(0.3)  # the supervisor ends the step's group
        recorded = journaled_lines(home)
        lost.append(max(0, printed - recorded))
        rates.append(printed / elapsed)
        shutil.rmtree(work, ignore_errors=True)
    rate = statistics.median(rates)
    print(
        f"kill -9, {kills} kills: lines printed but not journaled: median {statistics.median(lost)}, "
        f"max {max(lost)} (at ~{rate:.0f} lines/s: max {1000 * max(lost) / rate:.0f} ms of output)"
    )


def start_cluster():
    pgbin = next(
        os.path.join("/usr/lib/postgresql", v, "bin")
        for v in sorted(os.listdir("/usr/lib/postgresql"), reverse=True)
    )
    root = tempfile.mkdtemp(prefix="cutover-bench-pg-")
    os.chmod(root, 0o777)
    data = os.path.join(root, "data")
    as_postgres = ["su", "postgres", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    port = random.randint(40000, 50000)
    subprocess.run(as_postgres + [f"{pgbin}/initdb -D {data} -A trust -U postgres >/dev/null"], check=True)
    subprocess.run(
        as_postgres + [f"{pgbin}/pg_ctl -D {data} -o '-p {port} -k {root}' -l {root}/log -w start >/dev/null"],
        check=True,
    )
    return root, data, port, as_postgres, pgbin


def frozen_server(runs):
    root, data, port, as_postgres, pgbin = start_cluster()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    steps = "".join(
        f'[[sections.steps]]\nid = "{c}"\ntitle = "{c}"\nkind = "sql"\n'
        f'query = "SELECT pg_sleep(30) IS NULL"\nexpect = "all_true"\ntimeout_secs = 3\n'
        for c in "abcde"
    )
    path = runbook(root, steps)
    waits = []
    try:
        for _ in range(runs):
            home = tempfile.mkdtemp()
            child = subprocess.Popen(
                [BIN, "check", "--runbook", path, "--database-url", url],
                env=dict(os.environ, CUTOVER_HOME=home),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            while True:
                count = subprocess.run(
                    ["psql", "-X", "-qtA", url, "-c",
                     "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' "
                     "AND application_name = 'cutover'"],
                    capture_output=True, text=True,
                ).stdout.strip()
                if count and int(count) >= 2:
                    break
                time.sleep(0.05)
            with open(os.path.join(data, "postmaster.pid")) as f:
                postmaster = int(f.readline())
            kids = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
            pids = [postmaster] + [int(k) for k in kids]
            stopped = time.monotonic()
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            child.wait()
            waits.append(time.monotonic() - stopped)
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            shutil.rmtree(home, ignore_errors=True)
            # Let the abandoned sessions end before the next run.
            subprocess.run(
                ["psql", "-X", "-qtA", url, "-c",
                 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cutover'"],
                capture_output=True,
            )
    finally:
        subprocess.run(as_postgres + [f"{pgbin}/pg_ctl -D {data} -m immediate stop >/dev/null"])
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"frozen server (SIGSTOP), steps with a 3 s timeout: check exits {statistics.median(waits):.2f} s "
        f"after the stop (median of {runs}; max {max(waits):.2f} s)"
    )


def flood(runs, lines=1_000_000):
    work = tempfile.mkdtemp()
    path = runbook(work, shell_step(f"seq 1 {lines}"))
    ours, bare = [], []
    for _ in range(runs):
        home = tempfile.mkdtemp()
        t = time.monotonic()
        subprocess.run(
            [BIN, "check", "--runbook", path, "--allow-shell", "--database-url", NOWHERE],
            env=dict(os.environ, CUTOVER_HOME=home), stdout=subprocess.DEVNULL, check=False,
        )
        ours.append(time.monotonic() - t)
        assert journaled_lines(home) == lines, "every line journaled"
        shutil.rmtree(home, ignore_errors=True)
        t = time.monotonic()
        subprocess.run(f"seq 1 {lines} | cat > /dev/null", shell=True, check=True)
        bare.append(time.monotonic() - t)
    o, b = statistics.median(ours), statistics.median(bare)
    print(
        f"flood, {lines:,} lines: cutover check (journaled) {o:.2f} s, seq | cat {b:.3f} s "
        f"(ratio {o / b:.0f}x; {lines / o:,.0f} lines/s journaled), median of {runs} alternated pairs"
    )
    shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    lines_at_risk(args.kills)
    frozen_server(args.runs)
    flood(args.runs)


if __name__ == "__main__":
    sys.exit(main())
