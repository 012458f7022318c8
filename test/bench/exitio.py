#!/usr/bin/env python3
"""Runs a broker as its child and records what it wrote to disk over its
whole life, for test/bench/run.sh (write amplification).

    exitio.py OUT -- COMMAND [ARGS...]

Writes the child's pid to OUT.pid as soon as it is forked (run.sh signals
and measures the broker itself, not this wrapper). When the child exits, its
/proc/PID/io is read while it is still a zombie (waitid with WNOWAIT: the
kernel keeps the counters of all its threads until it is reaped), then it is
reaped and OUT gets one JSON object: write_bytes (and the rest of /proc/PID/io),
and ru_oublock_bytes from wait4's rusage (the same counter in 512-byte units,
a cross-check). The shutdown's own writes (a final checkpoint) are included,
which a read of /proc/PID/io before SIGTERM would miss.

SIGTERM, SIGINT and SIGHUP sent to the wrapper are passed on to the child.
The exit status is the child's (128 + signal number if it was killed).
"""
import json
import os
import signal
import sys


def read_io(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k.strip(): int(v) for k, v in (line.split(":", 1) for line in f if ":" in line)}
    except (OSError, ValueError):
        return {}


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: exitio.py OUT -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    out, cmd = sys.argv[1], sys.argv[3:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            print(f"exitio: cannot run {cmd[0]}: {e}", file=sys.stderr)
        os._exit(127)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda n, _frame: os.kill(pid, n))
    with open(out + ".pid.tmp", "w") as f:
        f.write(f"{pid}\n")
    os.replace(out + ".pid.tmp", out + ".pid")
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # retried on EINTR (PEP 475)
    io = read_io(pid)
    _, status, ru = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    record = {"pid": pid, "exit_code": code, "ru_oublock_bytes": ru.ru_oublock * 512}
    record.update(io)
    with open(out, "w") as f:
        json.dump(record, f)
        f.write("\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
