#!/usr/bin/env python3
"""`cutover drift` on a schema of 2,000 tables, against the bare commands doing the same work.

Usage:  python3 benches/drift_tables.py [--tables 2000] [--per-file 100] [--runs 3]

1. Builds the release binary and starts `cutover demo --print-url` (a throwaway cluster), then
   creates a database `drift_bench` on it and deploys into it (`cutover deploy`) --tables tables
   in Prisma's style, --per-file to a migration: each with a primary key, a unique column, a
   defaulted column, an enum column, an index and a foreign key to the table before it; one
   enum and one sequence per file.
2. Paired and alternated, --runs times:
   - `cutover drift --scratch-url URL` (the whole process: a scratch database created on the
     demo's server, the applied migrations replayed in order, both catalogs read and compared,
     the scratch database dropped);
   - the bare commands doing the same on the same server: `CREATE DATABASE`, `psql -f` of each
     migration, `pg_dump --schema-only` of both databases, `diff`, `DROP DATABASE`.
   And `cutover drift` as it runs by default, into a throwaway cluster of its own (initdb and
   its start and stop included).
   Prints the medians and cutover / bare.

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


def table(i):
    previous = f'\n    CONSTRAINT "T{i}_prevId_fkey" FOREIGN KEY ("prevId") REFERENCES "T{i - 1}"("id") ' \
               'ON DELETE SET NULL ON UPDATE CASCADE,' if i % 100 else ''
    return (f'-- CreateTable\nCREATE TABLE "T{i}" (\n'
            '    "id" TEXT NOT NULL,\n'
            '    "slug" VARCHAR(64) NOT NULL,\n'
            '    "count" INTEGER NOT NULL DEFAULT 0,\n'
            f'    "state" "State{i // 100}" NOT NULL DEFAULT \'ACTIVE\',\n'
            '    "prevId" TEXT,\n'
            '    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n'
            f'{previous}\n'
            f'    CONSTRAINT "T{i}_pkey" PRIMARY KEY ("id")\n);\n\n'
            f'-- CreateIndex\nCREATE UNIQUE INDEX "T{i}_slug_key" ON "T{i}"("slug");\n\n'
            f'-- CreateIndex\nCREATE INDEX "T{i}_createdAt_idx" ON "T{i}"("createdAt");\n\n')


def write_migrations(folder, tables, per_file):
    for start in range(0, tables, per_file):
        name = os.path.join(folder, f"{20270101000000 + start}_tables_{start}")
        os.makedirs(name, exist_ok=True)
        enum = start // 100
        with open(os.path.join(name, "migration.sql"), "w") as f:
            f.write(f'-- CreateEnum\nCREATE TYPE "State{enum}" AS ENUM (\'ACTIVE\', \'ARCHIVED\');\n\n')
            f.write(f'CREATE SEQUENCE "counter_{start}";\n\n')
            for i in range(start, min(start + per_file, tables)):
                f.write(table(i))


def timed(args, env):
    start = time.perf_counter()
    done = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {done.returncode}: {done.stdout[-2000:]}{done.stderr}")
    return elapsed


def bare(url, target, folder):
    server = url.rsplit("/", 1)[0]
    shadow = f"{server}/drift_bare"
    start = time.perf_counter()
    base.psql(url, "CREATE DATABASE drift_bare")
    for name in sorted(os.listdir(folder)):
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", shadow, "-f",
                        os.path.join(folder, name, "migration.sql")], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "a.sql"), os.path.join(tmp, "b.sql")
        subprocess.run(["pg_dump", "--schema-only", f"--file={a}", target], check=True)
        subprocess.run(["pg_dump", "--schema-only", f"--file={b}", shadow], check=True)
        subprocess.run(["diff", a, b], stdout=subprocess.DEVNULL)
    base.psql(url, "DROP DATABASE drift_bare")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home, env, demo, url = base.start_demo()
    try:
        server = url.rsplit("/", 1)[0]
        target = f"{server}/drift_bench"
        base.psql(url, "CREATE DATABASE drift_bench")
        folder = tempfile.mkdtemp(prefix="cutover-drift-bench-")
        write_migrations(folder, args.tables, args.per_file)
        deploy = timed([base.BINARY, "deploy", "--database-url", target, "--migrations", folder,
                        "--confirm", "drift_bench"], env)
        count = base.psql(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        ours, theirs, cluster = [], [], []
        for _ in range(args.runs):
            ours.append(timed([base.BINARY, "drift", "--database-url", target, "--migrations", folder,
                               "--scratch-url", url], env))
            theirs.append(bare(url, target, folder))
            cluster.append(timed([base.BINARY, "drift", "--database-url", target, "--migrations", folder],
                                 env))
        med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
        files = len(os.listdir(folder))
        print(f"{count} tables (with _prisma_migrations) in {files} migrations, deployed in {deploy:.1f} s; "
              f"{args.runs} runs each, alternating; medians")
        print(f"cutover drift --scratch-url (whole process): {med_ours:6.2f} s  (min {min(ours):.2f}, max {max(ours):.2f})")
        print(f"createdb + psql -f + pg_dump -s x2 + diff:   {med_theirs:6.2f} s  (min {min(theirs):.2f}, max {max(theirs):.2f})")
        print(f"ratio cutover / bare: {med_ours / med_theirs:.2f}")
        print(f"cutover drift (its own throwaway cluster):   {statistics.median(cluster):6.2f} s")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


if __name__ == "__main__":
    main()
