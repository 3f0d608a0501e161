"""ansible-runner's binary when the warm server is off: ``ansible-playbook`` that a cancel really stops.

ansible-runner stops a run (timeout, cancel) with SIGKILL to its child's process group. Ansible's
workers run in sessions of their own, so they and the modules they run would carry on. This launcher
runs ``ansible-playbook`` in a process group of its own with a parent-death signal: when
ansible-runner kills the launcher, ansible-playbook gets SIGTERM and stops its workers itself.
The launcher relays the exit status. Standard library only; started with ``python -I -S``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(args: list[str]) -> int:
    if not args:
        print("usage: runner_cold_launcher.py PROGRAM ARGS...", file=sys.stderr)
        return 2
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:  # the launcher died before the signal was armed
                os._exit(1)
            os.execv(args[0], args)
        finally:
            os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        os.kill(pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, forward)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
