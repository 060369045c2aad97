"""Start a program and report its own peak RSS: `python -S bench/launch.py RESULT_FILE PROGRAM [ARGS ...]`.

Linux carries a process's peak resident set across fork and exec: a program spawned straight from a
benchmark that has Django loaded would report the benchmark's peak as its own. This launcher is a bare
interpreter (a few MB), so what wait4 reports for the program it spawns is the program's. It forwards
SIGINT and SIGTERM, exits with the program's status and writes {"peak_mb", "returncode"} to RESULT_FILE.
"""

import json
import os
import signal
import sys


def main(argv: list[str]) -> int:
    result, program = argv[0], argv[1:]
    pid = os.posix_spawn(program[0], program, os.environ)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda sig, frame: os.kill(pid, sig))
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as out:
        json.dump({"peak_mb": usage.ru_maxrss / 1024, "returncode": code}, out)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
