#!/usr/bin/env python3
"""The catalog probes at 10,000 indexes: cutover against psql sending the same SQL.

Usage:  python3 benches/catalog_probes.py [--tables 2000] [--runs 7]

1. Builds the release binary, starts `cutover demo --print-url` and applies the release's
   pending migrations (as benches/check_vs_psql.py does), then adds --tables tables with five
   indexes each and a foreign key to the one before (2,000: 10,000 more indexes, 1,999 more
   foreign keys), and VACUUM ANALYZE.
2. For each catalog step, captures the exact SQL one `cutover check --only STEP` sends for the
   step (statement logging on for that run; the connection warm-up and the ping left out).
3. Runs, paired and alternated, --runs times each:
   - `cutover check --only STEP` (a fresh data directory each run), and reads the step's own
     `duration_ms` from its JSON report;
   - psql with that SQL twice in one new session (`\\timing`): the first is what a fresh
     session pays, the second the floor: the same work on a session whose caches already hold
     these very tables and indexes.
4. Prints the medians, and cutover / psql (second run) (lower is better).

Nothing here asserts on time: it prints figures for a person (and the closing note).
"""

import argparse
import os
import re
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_vs_psql as base  # noqa: E402

STEPS = [
    "tables.required",
    "performance.indexes",
    "performance.invalid",
    "validation.unique",
    "validation.fk_valid",
]


def build(url, tables):
    lines = []
    for i in range(1, tables + 1):
        parent = f", parent bigint REFERENCES bulk_{i - 1} (id)" if i > 1 else ""
        lines.append(f"CREATE TABLE bulk_{i} (id bigint PRIMARY KEY, a int, b int, c text, "
                     f"d timestamptz{parent});")
        lines.append(f"CREATE INDEX ON bulk_{i} (a); CREATE INDEX ON bulk_{i} (b); "
                     f"CREATE INDEX ON bulk_{i} (c); CREATE INDEX ON bulk_{i} (d, a);")
    lines.append("VACUUM ANALYZE;")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url], input="\n".join(lines),
                   text=True, check=True, capture_output=True)


def capture(url, env, step):
    """The SQL cutover's check sends for `step` alone, each string as it went in one round
    trip, written for psql (`\\;` between the statements of one string)."""
    entries = base.logged(url, env, ["check", "--database-url", url, "--only", step])
    sent = []
    for _pid, app, level, text in entries:
        if app != "cutover" or level != "LOG":
            continue
        found = re.match(r"statement: (.*)", text, re.S)
        # The warm-up (its first statement plans a join over the catalogs) is no step's.
        if found and "EXPLAIN SELECT 1" not in found.group(1):
            sent.append(base.one_round_trip(found.group(1)))
    return sent


def step_ms(url, env, step):
    home = tempfile.mkdtemp(prefix="cutover-bench-run-")
    out = subprocess.run([base.BINARY, "check", "--database-url", url, "--only", step,
                          "--format", "json"], env=dict(env, CUTOVER_HOME=home),
                         capture_output=True, text=True).stdout
    shutil.rmtree(home, ignore_errors=True)
    report = json.loads(out)
    return float(report["steps"][0]["duration_ms"])


def psql_ms(url, env, script):
    """psql's \\timing of the step's SQL, in a new session: (first time, second time)."""
    out = subprocess.run(["psql", "-X", "-q", "-o", "/dev/null", "-f", script, url],
                         env=dict(env, PGOPTIONS=base.PGOPTIONS), capture_output=True,
                         text=True).stdout
    times = [float(t) for t in re.findall(r"^Time: ([\d.]+) ms", out, re.M)]
    half = len(times) // 2
    return sum(times[:half]), sum(times[half:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    home, env, demo, url = base.start_demo()
    try:
        base.migrate(url)
        build(url, args.tables)
        counts = base.psql(url, "SELECT (SELECT count(*) FROM pg_index) || ' indexes, ' || "
                                "(SELECT count(*) FROM pg_constraint WHERE contype = 'f') || "
                                "' foreign keys, ' || (SELECT count(*) FROM pg_class) || ' relations'")
        print(f"{counts}; {args.runs} runs each, alternating; milliseconds, medians")
        print(f"{'step':<22} {'cutover':>8} {'psql 1st':>9} {'psql 2nd':>9} {'cutover/2nd':>12}  round trips")
        for step in STEPS:
            sent = capture(url, env, step)
            script = os.path.join(home, f"{step}.sql")
            with open(script, "w") as f:
                f.write("\\timing on\n")
                for _ in range(2):
                    for line in sent:
                        f.write(line.rstrip().rstrip(";") + ";\n")
            ours, first, second = [], [], []
            for _ in range(args.runs):
                ours.append(step_ms(url, env, step))
                a, b = psql_ms(url, env, script)
                first.append(a)
                second.append(b)
            o, f1, f2 = (statistics.median(x) for x in (ours, first, second))
            print(f"{step:<22} {o:8.1f} {f1:9.2f} {f2:9.2f} {o / f2:12.2f}  {len(sent)}")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)


if __name__ == "__main__":
    main()
