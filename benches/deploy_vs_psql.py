#!/usr/bin/env python3
"""cutover deploy against psql running the same migration files, and how fast a waiting deploy
takes Prisma's lock once its holder lets go.

Usage:  python3 benches/deploy_vs_psql.py [--migrations 200] [--runs 5]

1. Builds the release binary and starts `cutover demo --print-url` (a throwaway cluster).
2. Writes --migrations small migration folders (a table and an index each, Prisma's style).
3. Paired and alternated, --runs times: on a new empty database each time,
   - `cutover deploy --confirm DB` (the whole process: connect, lock, create the history table,
     insert, run and record each migration, release);
   - `psql -f` of a script that includes the same files in order (`\\i`), one session, no
     bookkeeping: the bare tool doing the same schema work.
   Prints the medians and cutover / psql (the bookkeeping's cost; lower is better).
4. Lock hand-over, --runs times: a psql session takes `pg_advisory_lock(72707369)`, sleeps 1 s
   and lets go, printing the server's clock when it did; a deploy started meanwhile waits. The
   gap is the deploy's first `started_at` (written by the client right after it took the lock
   and read the history) minus that moment: the time from release to the deploy proceeding.

Nothing here asserts on time: it prints figures for a person (and the closing note).
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_vs_psql as base  # noqa: E402

LOCK = "provider = \"postgresql\"\n"


def write_migrations(folder, count):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "migration_lock.toml"), "w") as f:
        f.write(LOCK)
    names = []
    for i in range(count):
        name = f"2026{i:010d}_m{i}"
        os.makedirs(os.path.join(folder, name))
        with open(os.path.join(folder, name, "migration.sql"), "w") as f:
            f.write(f'-- CreateTable\nCREATE TABLE "T{i}" (\n    "id" TEXT NOT NULL,\n'
                    f'    "v" INTEGER,\n\n    CONSTRAINT "T{i}_pkey" PRIMARY KEY ("id")\n);\n\n'
                    f'-- CreateIndex\nCREATE INDEX "T{i}_v_idx" ON "T{i}"("v");\n')
        names.append(name)
    return names


def fresh(url, name):
    admin = re.sub(r"/[^/?]+(\?|$)", r"/postgres\1", url, count=1)
    base.psql(admin, f'DROP DATABASE IF EXISTS "{name}"')
    base.psql(admin, f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/?]+(\?|$)", f"/{name}\\1", url, count=1)


def timed(args, env):
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{args[0]} failed: {done.stderr.strip()[:300]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--migrations", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    home, env, demo, url = base.start_demo()
    folder = os.path.join(home, "migrations")
    names = write_migrations(folder, args.migrations)
    script = os.path.join(home, "all.sql")
    with open(script, "w") as f:
        f.write("\\set ON_ERROR_STOP 1\n")
        for name in names:
            f.write(f"\\i {os.path.join(folder, name, 'migration.sql')}\n")
    try:
        ours, bare = [], []
        for run in range(args.runs):
            a = fresh(url, f"deploy_{run}")
            ours.append(timed([base.BINARY, "deploy", "--database-url", a, "--migrations", folder,
                               "--confirm", f"deploy_{run}"], env))
            b = fresh(url, f"psql_{run}")
            bare.append(timed(["psql", "-X", "-q", "-o", "/dev/null", "-f", script, b], env))
        o, p = statistics.median(ours), statistics.median(bare)
        print(f"{args.migrations} migrations, {args.runs} runs each, alternating; medians")
        print(f"cutover deploy (whole process):   {o * 1000:8.1f} ms  "
              f"(min {min(ours) * 1000:.1f}, max {max(ours) * 1000:.1f})")
        print(f"psql -f of the same files:        {p * 1000:8.1f} ms  "
              f"(min {min(bare) * 1000:.1f}, max {max(bare) * 1000:.1f})")
        print(f"ratio cutover / psql: {o / p:.2f} (lower is better)")

        one = os.path.join(home, "one")
        write_migrations(one, 1)
        gaps = []
        for run in range(args.runs):
            db = fresh(url, f"lock_{run}")
            holder = subprocess.Popen(
                ["psql", "-X", "-A", "-t", "-q", db, "-c",
                 "SELECT pg_advisory_lock(72707369); SELECT pg_sleep(1); "
                 "SELECT pg_advisory_unlock(72707369), "
                 "extract(epoch FROM clock_timestamp())"],
                env=env, stdout=subprocess.PIPE, text=True)
            time.sleep(0.3)
            timed([base.BINARY, "deploy", "--database-url", db, "--migrations", one,
                   "--confirm", f"lock_{run}"], env)
            out = holder.communicate()[0]
            released = float(out.strip().splitlines()[-1].split("|")[-1])
            started = float(base.psql(db, "SELECT extract(epoch FROM min(started_at)) "
                                          "FROM _prisma_migrations"))
            gaps.append((started - released) * 1000)
        print(f"lock released -> deploy proceeding: median {statistics.median(gaps):.1f} ms "
              f"(min {min(gaps):.1f}, max {max(gaps):.1f}; {args.runs} runs)")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)


if __name__ == "__main__":
    main()
