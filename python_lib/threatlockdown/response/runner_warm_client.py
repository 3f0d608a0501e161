"""The program ansible-runner starts instead of ``ansible-playbook`` when the warm runner is on.

ansible-runner runs ``python -I -S runner_warm_client.py SOCKET ARGS...`` under its pty. This file hands
its argv, environment, working directory and its stdin/stdout/stderr descriptors (SCM_RIGHTS) to the
warm server listening on SOCKET, waits for the exit status of the playbook run the server forked, and
exits with it. Output goes straight from the forked run to ansible-runner's pty, so job events,
stdout and artifacts are exactly those of a normal run.

Standard library only, and no import of the threatlockdown package: it starts with ``-I -S`` to keep
its start-up in the low milliseconds. If ansible-runner kills it (timeout, cancel) the server sees the
connection close and kills the run.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys

# Exit status when the server cannot be reached or goes away; ansible-playbook uses 1..8 and 250.
EXIT_NO_SERVER = 111
HEADER = struct.Struct("!I")


def _request(argv: list[str]) -> bytes:
    body = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode("utf-8")
    return HEADER.pack(len(body)) + body


def main(args: list[str]) -> int:
    if len(args) < 2:
        print("usage: runner_warm_client.py SOCKET ANSIBLE_PLAYBOOK_ARGS...", file=sys.stderr)
        return 2
    socket_path, argv = args[0], ["ansible-playbook", *args[1:]]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(socket_path)
    except OSError as exc:
        print(f"threatlockdown warm runner: cannot reach {socket_path}: {exc}", file=sys.stderr)
        return EXIT_NO_SERVER
    # A SIGTERM/SIGHUP to this process must end the run too: closing the socket does that.
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda *_: os._exit(EXIT_NO_SERVER))
    fds = array.array("i", [0, 1, 2])
    data = _request(argv)
    conn.sendmsg([data[:4096]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    if len(data) > 4096:
        conn.sendall(data[4096:])
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            print("threatlockdown warm runner: the server closed the connection", file=sys.stderr)
            return EXIT_NO_SERVER
        reply += chunk
    return int(reply.decode("ascii").strip())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
