#!/usr/bin/env python3
"""Bytes the wizard writes to its terminal per second while idle on a section screen with the
live panels (what a pair over SSH pays for an open, untouched wizard).

Usage:  python3 benches/idle_bytes.py [--seconds 30] [--width 160] [--height 45]

Starts `cutover demo --print-url`, opens `cutover run` on it in a pseudo-terminal of the given
size, opens the first section, lets the first frames and samples settle for 5 s, then counts
every byte written for --seconds without touching a key. Prints the total and the rate.
"""

import argparse
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "cutover")


def drain(fd, seconds):
    """Reads everything the child writes for `seconds`; returns the byte count."""
    total, deadline = 0, time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            total += len(chunk)
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=45)
    args = parser.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    home = tempfile.mkdtemp(prefix="cutover-idle-")
    env = dict(os.environ, CUTOVER_HOME=home, TERM="xterm-256color")
    demo = subprocess.Popen([BINARY, "demo", "--print-url"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        url = demo.stdout.readline().strip()
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe(BINARY, [BINARY, "run", "--rehearsal", "--database-url", url], env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", args.height, args.width, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        drain(fd, 2)
        os.write(fd, b"\r")  # open the first section
        settle = drain(fd, 5)
        idle = drain(fd, args.seconds)
        os.write(fd, b"q")
        drain(fd, 1)
        os.waitpid(pid, 0)
        print(f"{args.width}x{args.height}: {settle} bytes while settling (5 s), then {idle} bytes "
              f"in {args.seconds:g} s idle = {idle / args.seconds:.0f} bytes/s")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
