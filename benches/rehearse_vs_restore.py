#!/usr/bin/env python3
"""`cutover rehearse` against the bare commands doing the same work, side by side.

Usage:  python3 benches/rehearse_vs_restore.py [--rows 1000000] [--runs 3]

1. Builds the release binary and starts `cutover demo --print-url` (the Sightline sample, the
   release's six migrations pending), then grows UsageEvent to --rows rows and dumps the
   database (custom format) once.
2. Paired and alternated, --runs times:
   - `cutover rehearse --dump FILE --migrations DIR --jobs 2` (the whole process: a throwaway
     cluster started, the dump restored with pg_restore -j2, ANALYZE, every table counted, the
     six migrations applied statement by statement with their locks read, the validation
     section run on the copy, the cluster removed);
   - the bare commands on the demo's own running server: `CREATE DATABASE`, `pg_restore -j2`,
     `ANALYZE`, `psql -f` of each pending migration, `DROP DATABASE`.
   Prints the medians and cutover / bare. cutover's run also starts and stops a cluster
   (initdb), which the bare commands are spared: that is printed apart.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_vs_psql as base  # noqa: E402

MIGRATIONS = os.path.join(base.ROOT, "assets", "demo", "prisma", "migrations")


def grow(url, rows):
    have = int(base.psql(url, 'SELECT count(*) FROM "UsageEvent"'))
    if have >= rows:
        return
    base.psql(url, f"""
        WITH u AS (SELECT array_agg(id ORDER BY id) AS ids FROM "User")
        INSERT INTO "UsageEvent" (id, "userId", "eventType", metadata, "createdAt")
        SELECT 'bench' || g, u.ids[1 + g % array_length(u.ids, 1)], 'bench', NULL,
               now() - (g % 100000) * interval '1 minute'
          FROM generate_series(1, {rows - have}) g, u""")
    base.psql(url, 'ANALYZE "UsageEvent"')


def timed(args, env=None, cwd=None):
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    # 1 is a finding of the rehearsal (a check failed on the copy), not a failed run.
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(args)} failed: {done.stderr}")
    return time.perf_counter() - start


def bare(url, dump, pending):
    server = url.rsplit("/", 1)[0]
    query = url.split("?", 1)[1] if "?" in url else ""
    copy = f"{server}/bench_copy" + (f"?{query}" if query else "")
    start = time.perf_counter()
    base.psql(url, "DROP DATABASE IF EXISTS bench_copy")
    base.psql(url, "CREATE DATABASE bench_copy")
    subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--jobs=2",
                    f"--dbname={copy}", dump], check=True, stderr=subprocess.DEVNULL)
    base.psql(copy, "ANALYZE")
    for script in pending:
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", copy, "-f", script],
                       check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    base.psql(url, "DROP DATABASE bench_copy")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home, env, demo, url = base.start_demo()
    try:
        grow(url, args.rows)
        folder = tempfile.mkdtemp(prefix="cutover-rehearse-bench-")
        dump = os.path.join(folder, "sightline_bench.dump")
        subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", url], check=True)
        applied = set(base.psql(url, "SELECT migration_name FROM _prisma_migrations").split())
        pending = [os.path.join(MIGRATIONS, name, "migration.sql")
                   for name in sorted(os.listdir(MIGRATIONS))
                   if name not in applied and os.path.isdir(os.path.join(MIGRATIONS, name))]
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(timed([base.BINARY, "rehearse", "--dump", dump, "--migrations", MIGRATIONS,
                               "--jobs", "2"], env=env, cwd=folder))
            theirs.append(bare(url, dump, pending))
        med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
        size = os.path.getsize(dump) / 1024 / 1024
        print(f"UsageEvent {args.rows} rows, dump {size:.0f} MiB, {len(pending)} pending migrations, "
              f"{args.runs} runs each, alternating; medians")
        print(f"cutover rehearse (whole process):       {med_ours:6.2f} s  (min {min(ours):.2f}, max {max(ours):.2f})")
        print(f"pg_restore -j2 + ANALYZE + psql -f:     {med_theirs:6.2f} s  (min {min(theirs):.2f}, max {max(theirs):.2f})")
        print(f"ratio cutover / bare: {med_ours / med_theirs:.2f}")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


if __name__ == "__main__":
    main()
