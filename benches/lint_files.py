#!/usr/bin/env python3
"""`cutover lint` over 1,000 Prisma-style migration files, with and without a target.

Usage:  python3 benches/lint_files.py [--files 1000] [--runs 5]

1. Builds the release binary and starts `cutover demo --print-url` (a throwaway cluster with
   the Sightline tables: Summary 200,000 rows, UsageEvent 500,000).
2. Writes --files migration folders in Prisma's style (quoted identifiers, `-- CreateIndex`
   comments), cycling through statements on the demo's tables: index builds with and without
   CONCURRENTLY, foreign keys, type changes, new columns, a new table with its index.
3. Paired and alternated, --runs times: `cutover lint --offline DIR --format json` and
   `cutover lint --database-url URL DIR --format json` (the whole process). Prints the medians
   and the time per file.
4. Round trips to the target: every statement the server logs (`log_statement = 'all'` for the
   moment) during one run with the target. The goal is one catalog query for all the tables of
   a run; the command adds the pool's first round trip (the connection check).

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

TEMPLATES = [
    '-- CreateIndex\nCREATE INDEX "Summary_c{i}_idx" ON "Summary"("videoId");\n',
    '-- CreateIndex\nCREATE INDEX CONCURRENTLY "UsageEvent_c{i}_idx" ON "UsageEvent"("eventType");\n',
    '-- AlterTable\nALTER TABLE "User" ADD COLUMN "c{i}" TEXT;\n',
    '-- AddForeignKey\nALTER TABLE "Summary" ADD CONSTRAINT "Summary_c{i}_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;\n',
    '-- AlterTable\nALTER TABLE "ShareLink" ALTER COLUMN "slug" SET DATA TYPE VARCHAR(64);\n',
    '-- CreateTable\nCREATE TABLE "T{i}" (\n    "id" TEXT NOT NULL,\n    "userId" TEXT NOT NULL,\n'
    '    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n\n'
    '    CONSTRAINT "T{i}_pkey" PRIMARY KEY ("id")\n);\n\n'
    '-- CreateIndex\nCREATE INDEX "T{i}_userId_idx" ON "T{i}"("userId");\n\n'
    '-- AddForeignKey\nALTER TABLE "T{i}" ADD CONSTRAINT "T{i}_userId_fkey" FOREIGN KEY ("userId") '
    'REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;\n',
]


def write_files(folder, count):
    for i in range(count):
        name = os.path.join(folder, f"{20270101000000 + i}_m{i}")
        os.makedirs(name, exist_ok=True)
        with open(os.path.join(name, "migration.sql"), "w") as f:
            f.write(TEMPLATES[i % len(TEMPLATES)].format(i=i))


def timed(args, env):
    start = time.perf_counter()
    done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(args)} failed: {done.stderr}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    home, env, demo, url = base.start_demo()
    try:
        folder = tempfile.mkdtemp(prefix="cutover-lint-bench-")
        write_files(folder, args.files)
        offline, online = [], []
        for _ in range(args.runs):
            offline.append(timed([base.BINARY, "lint", "--offline", "--format", "json", folder], env))
            online.append(timed([base.BINARY, "lint", "--database-url", url, "--format", "json", folder], env))
        # Round trips: every statement the server receives during one run, from its log.
        base.psql(url, "ALTER SYSTEM SET log_statement = 'all'")
        base.psql(url, "SELECT pg_reload_conf()")
        log = os.path.join(os.path.dirname(base.psql(url, "SHOW data_directory")), "server.log")
        time.sleep(0.5)
        start = os.path.getsize(log)
        timed([base.BINARY, "lint", "--database-url", url, "--format", "json", folder], env)
        time.sleep(0.5)
        with open(log, errors="replace") as f:
            f.seek(start)
            logged = [line for line in f if " LOG:  statement: " in line or " LOG:  execute " in line]
        base.psql(url, "ALTER SYSTEM RESET log_statement")
        base.psql(url, "SELECT pg_reload_conf()")
        transactions = len(logged)
        med_off, med_on = statistics.median(offline), statistics.median(online)
        print(f"{args.files} files, {args.runs} runs each, alternating; medians")
        print(f"cutover lint --offline:        {med_off * 1000:8.1f} ms  ({med_off / args.files * 1e6:.0f} µs per file)")
        print(f"cutover lint with the target:  {med_on * 1000:8.1f} ms  ({med_on / args.files * 1e6:.0f} µs per file)")
        print(f"round trips to the target for one run with it: {transactions}")
        for line in logged:
            print("   ", line.split(" LOG:  ", 1)[1].strip()[:90])
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)


if __name__ == "__main__":
    main()
