"""Start one child and report its wall time and peak RSS as JSON (stdlib only; run with -I -S).

Usage: ``python -I -S bench/_launch.py exit|banner PREFIX DIR ARGV...``

Linux counts the pre-exec memory of whoever spawned a process in its peak RSS (``ru_maxrss``),
so a big parent (the bench, with pydantic loaded) would set the floor of every figure. This
launcher is a bare interpreter: its own few MiB are the floor. ``exit``: time to the child's
exit (its stdout is discarded). ``banner PREFIX``: time until the child prints a line starting
with PREFIX; then SIGINT, and the peak RSS of its whole life.
"""

import json
import os
import signal
import sys
import time

BANNER_TIMEOUT_S = 60  # no banner by then: the child is killed and the failure reported
STOP_TIMEOUT_S = 10  # a child still running this long after SIGINT is killed (and reported)


def main() -> None:
    """Spawn, wait, print ``{"wall_s", "rss_mib", "cpu_s", "rc", "line"}``."""
    mode, rest = sys.argv[1], sys.argv[2:]
    prefix = rest.pop(0) if mode == "banner" else ""
    workdir, argv = rest[0], rest[1:]
    os.chdir(workdir)
    read_fd, write_fd = os.pipe() if mode == "banner" else (-1, os.open(os.devnull, os.O_WRONLY))
    actions = [(os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_CLOSE, write_fd)]
    if read_fd >= 0:
        actions.append((os.POSIX_SPAWN_CLOSE, read_fd))
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions)
    os.close(write_fd)
    line = ""
    wall = 0.0
    killed = False

    def kill(signum: int, frame: object) -> None:
        nonlocal killed
        killed = True
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, kill)
    if mode == "banner":
        signal.alarm(BANNER_TIMEOUT_S)
        with os.fdopen(read_fd) as out:
            for line in out:
                if line.startswith(prefix):
                    wall = time.perf_counter() - start
                    os.kill(pid, signal.SIGINT)
                    signal.alarm(STOP_TIMEOUT_S)
                    break
            out.read()  # drain until the child exits
    _, status, usage = os.wait4(pid, 0)
    signal.alarm(0)
    if mode == "exit" or not wall:  # (no banner: the caller reports the failure)
        wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "rss_mib": usage.ru_maxrss / 1024,
                      "cpu_s": usage.ru_utime + usage.ru_stime,
                      "rc": os.waitstatus_to_exitcode(status), "line": line.rstrip("\n"),
                      "killed": killed}))


if __name__ == "__main__":
    main()
