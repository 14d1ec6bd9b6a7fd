#!/usr/bin/env python3
"""cutover check against the same SQL run sequentially through one psql session.

Usage:  python3 benches/check_vs_psql.py [--summaries 1000000] [--runs 5] [--rtt-ms 0]

1. Builds the release binary and starts `cutover demo --print-url` (a throwaway cluster with the
   sample Sightline database, before its release), then applies the release's pending
   migrations with psql, so that the check sees the database as it is after the deploy.
2. Seeds it up to --summaries rows in "Summary" (and half as many usage events), then VACUUM
   ANALYZE (--summaries 0: the demo's own data).
3. Captures the exact SQL one `cutover check` sends: statement logging is switched on for one
   run, and every statement of cutover's sessions is read back from the server log, with its
   bind parameters substituted as the literals the log prints, BEGIN, SET and ROLLBACK
   included. The replay keeps each session's transactions whole and in order (BEGIN ...
   ROLLBACK), one transaction after another in the order they began; a multi-statement string
   that cutover sent in one round trip is sent in one by psql too (`\\;`); psql gets cutover's
   session settings (`PGOPTIONS`).
4. Times `cutover check` (the whole process: start, connect, run, print; a fresh data directory
   each run, so that no run learns from the one before) against `psql -f` of the replay,
   paired and alternated, --runs times each, and prints the medians and the ratio cutover / psql
   (lower is better).
5. The floor: the slowest single statement of the replay (psql's `\\timing`) plus one
   connection (`psql -c ''`): no schedule on any number of cores ends sooner. Prints
   cutover / floor.

With --error-window SECS, `monitoring.error_rates` watches for SECS instead of the bundled 5 s
(both sides wait as long; 0 shows how the rest of the suite is scheduled, without the window
that is its floor otherwise).

With --rtt-ms N both run again through a loopback TCP proxy that delays every chunk by N/2 ms
each way, as a database in another zone or region would.

Nothing here asserts on time: it prints figures for a person (and the closing note).
"""

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The bundled runbook's monitoring.error_rates window (window_secs); --error-window changes it.
ERROR_RATES_WINDOW_SECS = 5
# `--runbook FILE` when the window is changed.
RUNBOOK_ARGS = []
BINARY = os.path.join(ROOT, "target", "release", "cutover")
# The session settings cutover's pool gives every connection (src/db.rs).
PGOPTIONS = ("-c default_transaction_read_only=on -c idle_in_transaction_session_timeout=60000 "
             "-c max_parallel_workers_per_gather=0")


def sh(args, **kwargs):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs)


def start_demo():
    """Builds the release binary and starts `cutover demo --print-url` with a data directory of
    its own; returns (home, env, the demo's process, its URL)."""
    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    home = tempfile.mkdtemp(prefix="cutover-bench-")
    env = dict(os.environ, CUTOVER_HOME=home)
    demo = subprocess.Popen([BINARY, "demo", "--print-url"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    url = demo.stdout.readline().strip()
    if not url:
        sys.exit("the demo did not start")
    return home, env, demo, url


def psql(url, sql):
    return sh(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql]).stdout.strip()


def migrate(url):
    """Applies the demo's pending migrations (the Progress table and the performance indexes)."""
    folder = os.path.join(ROOT, "assets", "demo", "prisma", "migrations")
    applied = set(psql(url, "SELECT migration_name FROM _prisma_migrations").split())
    for name in sorted(os.listdir(folder)):
        script = os.path.join(folder, name, "migration.sql")
        if name in applied or not os.path.isfile(script):
            continue
        sh(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-f", script])
        psql(url, "INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, "
                  f"applied_steps_count) VALUES (gen_random_uuid()::text, 'bench', '{name}', now(), 1)")


def seed(url, summaries):
    have = int(psql(url, 'SELECT count(*) FROM "Summary"'))
    if have >= summaries:
        return
    start = time.perf_counter()
    psql(url, f"""
        INSERT INTO "Summary" (id, "userId", "videoId", "videoTitle", "channelName", content,
                               "keyMoments", "uploadDate", "isFavorite", "createdAt", "updatedAt")
        SELECT 'cb' || substr(md5('summary:' || i), 1, 23),
               u.ids[1 + i % array_length(u.ids, 1)],
               'vid' || i,
               'Summary ' || i,
               'Channel',
               repeat('lorem ipsum ', 8),
               jsonb_build_object('n', i),
               now() - (i % 900) * interval '1 day',
               i % 9 = 0,
               now() - (i % 720) * interval '1 hour',
               now()
          FROM generate_series({have + 1}, {summaries}) AS i,
               (SELECT array_agg(id ORDER BY id) AS ids FROM "User") AS u
    """)
    events = summaries // 2
    psql(url, f"""
        INSERT INTO "UsageEvent" (id, "userId", "eventType", metadata, "createdAt")
        SELECT 'ce' || substr(md5('event:' || i), 1, 23), u.ids[1 + i % array_length(u.ids, 1)],
               'SUMMARY_VIEWED', NULL, now() - (i % 43200) * interval '1 minute'
          FROM generate_series(100001, 100000 + {events}) AS i,
               (SELECT array_agg(id ORDER BY id) AS ids FROM "User") AS u
    """)
    psql(url, "VACUUM ANALYZE")
    print(f"seeded {summaries} summaries and {events} more usage events "
          f"in {time.perf_counter() - start:.1f}s", file=sys.stderr)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[(\d+)\] (\S*): (\w+):  (.*)$")


def logged(url, env, args):
    """Runs cutover with `args` once with statement logging; returns the server log's entries
    of that run as [pid, application, level, text], continuation lines joined."""
    data_dir = psql(url, "SHOW data_directory")
    log_path = os.path.join(os.path.dirname(data_dir), "server.log")
    psql(url, "ALTER SYSTEM SET log_statement = 'all'")
    psql(url, "ALTER SYSTEM SET log_line_prefix = '%m [%p] %a: '")
    psql(url, "SELECT pg_reload_conf()")
    time.sleep(0.5)
    offset = os.path.getsize(log_path)
    home = tempfile.mkdtemp(prefix="cutover-bench-capture-")
    subprocess.run([BINARY, *args], env=dict(env, CUTOVER_HOME=home), capture_output=True)
    shutil.rmtree(home, ignore_errors=True)
    time.sleep(0.5)
    psql(url, "ALTER SYSTEM RESET log_statement")
    psql(url, "ALTER SYSTEM RESET log_line_prefix")
    psql(url, "SELECT pg_reload_conf()")
    with open(log_path, encoding="utf-8", errors="replace") as log:
        log.seek(offset)
        lines = log.read().splitlines()

    # Group continuation lines (multi-line statements) under their log line.
    entries = []
    for line in lines:
        match = LOG_LINE.match(line)
        if match:
            entries.append(list(match.groups()))
        elif entries:
            entries[-1][3] += "\n" + line.lstrip("\t")
    return entries


def capture_sql(url, env):
    """Runs cutover check once with statement logging; returns its transactions (lists of SQL
    lines), each whole, in the order they began."""
    entries = logged(url, env, ["check", "--database-url", url, *RUNBOOK_ARGS])

    # [pid, sql, sent in the simple protocol] in log order.
    statements = []
    for pid, app, level, text in entries:
        # The checks' sessions; not the live panels' (cutover-monitor), which check has none of.
        if app != "cutover":
            continue
        if level == "LOG":
            found = re.match(r"(statement|execute [^:]*): (.*)", text, re.S)
            if found:
                statements.append([pid, found.group(2), found.group(1) == "statement"])
        elif level == "DETAIL" and text.startswith("parameters: ") and statements:
            params = dict(re.findall(r"\$(\d+) = ('(?:[^']|'')*'|NULL)", text))
            sql = statements[-1][1]
            for number in sorted(params, key=int, reverse=True):
                sql = sql.replace(f"${number}", params[number])
            statements[-1][1] = sql
    # sqlx's own connection set-up is not part of the checks.
    statements = [s for s in statements if s[1].strip() and not s[1].startswith("SET ")]
    return transactions(statements)


def transactions(statements):
    """Each session's statements cut into transactions (BEGIN ... ROLLBACK), kept whole, in the
    order they began; a statement outside a transaction stands alone."""
    open_by_pid, done = {}, []
    for position, (pid, sql, simple) in enumerate(statements):
        line = one_round_trip(sql) if simple else " ".join(sql.strip().rstrip(";").splitlines())
        head = sql.lstrip().upper()
        if head.startswith("BEGIN"):
            if pid in open_by_pid:
                done.append(open_by_pid.pop(pid))
            open_by_pid[pid] = (position, [line])
        elif pid in open_by_pid:
            open_by_pid[pid][1].append(line)
            if head.startswith(("ROLLBACK", "COMMIT")) and "SAVEPOINT" not in head:
                done.append(open_by_pid.pop(pid))
        else:
            done.append((position, [line]))
    done.extend(open_by_pid.values())
    done.sort(key=lambda t: t[0])
    return [lines for _, lines in done]


def one_round_trip(sql):
    """A simple-protocol string of several statements, written so that psql sends it in one
    round trip as cutover did: its separators become a backslash-semicolon (quotes and quoted
    identifiers respected), all on one line."""
    out, quote = [], None
    for c in sql.strip().rstrip(";").strip():
        if quote:
            out.append(c)
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == ";":
            out.append("\\;")
        else:
            out.append(c)
    return " ".join("".join(out).splitlines())


def start_delay_proxy(target_port, one_way_delay):
    """A loopback TCP proxy that holds every chunk for `one_way_delay` seconds; returns its port."""
    ready = threading.Event()
    box = {}

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(one_way_delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        box["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    ready.wait()
    return box["port"]


def compare(label, url, script, runs, env, floor):
    check_times, psql_times = [], []
    penv = dict(env, PGOPTIONS=PGOPTIONS)
    for _ in range(runs):
        home = tempfile.mkdtemp(prefix="cutover-bench-run-")
        check_times.append(timed([BINARY, "check", "--database-url", url, *RUNBOOK_ARGS],
                                 dict(env, CUTOVER_HOME=home)))
        shutil.rmtree(home, ignore_errors=True)
        psql_times.append(timed(["psql", "-X", "-q", "-o", "/dev/null", "-f", script, url], penv))
    check_median = statistics.median(check_times)
    psql_median = statistics.median(psql_times)
    print(f"[{label}] cutover check (concurrent):  median {check_median * 1000:8.1f} ms  "
          f"(min {min(check_times) * 1000:.1f}, max {max(check_times) * 1000:.1f})")
    print(f"[{label}] psql, same SQL, sequential:  median {psql_median * 1000:8.1f} ms  "
          f"(min {min(psql_times) * 1000:.1f}, max {max(psql_times) * 1000:.1f})")
    print(f"[{label}] ratio cutover / psql: {check_median / psql_median:.2f} (lower is better)")
    if floor:
        slowest, connect, text = floor
        print(f"[{label}] floor: the slowest statement {slowest * 1000:.1f} ms + a connection "
              f"{connect * 1000:.1f} ms = {(slowest + connect) * 1000:.1f} ms; "
              f"cutover / floor: {check_median / (slowest + connect):.2f}")
        print(f"[{label}]   (slowest: {text[:120]})")


def floor_of(url, script, env):
    """The slowest statement of the replay (psql's \timing, echoed), and one connection."""
    penv = dict(env, PGOPTIONS=PGOPTIONS)
    out = subprocess.run(["psql", "-X", "-a", "-o", "/dev/null", "-c", "\\timing on", "-f", script, url],
                         env=penv, capture_output=True, text=True).stdout
    slowest, text, last = 0.0, "", ""
    for line in out.splitlines():
        found = re.match(r"^Time: ([\d.]+) ms", line)
        if found:
            if float(found.group(1)) / 1000 > slowest:
                slowest, text = float(found.group(1)) / 1000, last
        elif line.strip():
            last = line.strip()
    connects = sorted(timed(["psql", "-X", "-q", "-c", "", url], penv) for _ in range(5))
    return slowest, connects[2], text


def timed(args, env):
    start = time.perf_counter()
    subprocess.run(args, env=env, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--summaries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--error-window", type=float, default=5.0,
                        help="seconds monitoring.error_rates watches (the bundled runbook: 5)")
    parser.add_argument("--rtt-ms", type=float, default=0.0,
                        help="round trip added by the proxy for a second comparison (0: none)")
    args = parser.parse_args()

    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    home = tempfile.mkdtemp(prefix="cutover-bench-")
    global ERROR_RATES_WINDOW_SECS
    if args.error_window != ERROR_RATES_WINDOW_SECS:
        text = sh([BINARY, "runbook", "export"]).stdout
        text, changed = re.subn(r"(?m)^window_secs = 5$", f"window_secs = {args.error_window:g}", text)
        assert changed == 1, "the bundled runbook's error_rates window"
        path = os.path.join(home, "runbook.toml")
        with open(path, "w") as f:
            f.write(text)
        RUNBOOK_ARGS.extend(["--runbook", path])
        ERROR_RATES_WINDOW_SECS = args.error_window
    env = dict(os.environ, CUTOVER_HOME=home)
    demo = subprocess.Popen([BINARY, "demo", "--print-url"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        url = demo.stdout.readline().strip()
        if not url:
            sys.exit("the demo did not start")
        seed(url, args.summaries)
        migrate(url)
        transactions_ = capture_sql(url, env)
        script = os.path.join(home, "replay.sql")
        count = 0
        with open(script, "w") as out:
            out.write("\\set ON_ERROR_STOP 0\n")
            waited = False
            for transaction in transactions_:
                for sql in transaction:
                    count += 1
                    out.write(sql.rstrip().rstrip(";") + ";\n")
                    # monitoring.error_rates reads the counters, waits its window, reads them
                    # again: the replay waits as long after the first read, as a person
                    # checking by hand.
                    if "sessions_abandoned" in sql and not waited and ERROR_RATES_WINDOW_SECS > 0:
                        out.write(f"SELECT pg_sleep({ERROR_RATES_WINDOW_SECS:g});\n")
                        waited = True
        print(f"captured {count} statements in {len(transactions_)} transactions of one check "
              f"into {script}", file=sys.stderr)

        rows = psql(url, 'SELECT count(*) FROM "Summary"')
        floor = floor_of(url, script, env)
        print(f"Summary rows: {rows}; {count} statements; {args.runs} runs each, alternating")
        compare("loopback", url, script, args.runs, env, floor)
        if args.rtt_ms > 0:
            port = int(re.search(r":(\d+)/", url).group(1))
            proxy_port = start_delay_proxy(port, args.rtt_ms / 2000.0)
            remote = url.replace(f":{port}/", f":{proxy_port}/")
            compare(f"rtt {args.rtt_ms:g} ms", remote, script, args.runs, env, None)
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)


if __name__ == "__main__":
    main()
