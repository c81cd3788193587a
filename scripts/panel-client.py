#!/usr/bin/env python3
"""A minimal client of trueconf2mqtt's panel TCP protocol (docs/panels.md), standard library only.

    panel-client.py [--host H] [--port P] [--token T] LINE...

Sends AUTH (when a token is given, or $PANEL_TOKEN is set), then each LINE, and prints every
line the bridge sends until each command got its reply (OK/ERR/RESULT/STATE/PONG/ERROR);
`SUBSCRIBE` lines are answered by STATE lines, so after them it keeps printing for --listen
seconds. A template for a control system's own TCP client.
"""

import argparse
import os
import socket
import sys
import time

REPLIES = ("OK ", "ERR ", "RESULT ", "STATE ", "PONG", "ERROR ", "HELP END")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9181)
    parser.add_argument("--token", default=os.environ.get("PANEL_TOKEN"))
    parser.add_argument("--listen", type=float, default=1.0,
                        help="seconds to keep printing after the last reply (for SUBSCRIBE)")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("lines", nargs="+")
    args = parser.parse_args()

    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    pending = bytearray()

    def send(line):
        sock.sendall(line.encode("utf-8") + b"\r\n")

    def read_line():
        """The next line, without its end; None when the bridge closed the connection."""
        while b"\n" not in pending:
            data = sock.recv(4096)
            if not data:
                return None
            pending.extend(data)
        at = pending.index(b"\n")
        line = pending[:at].decode("utf-8", "replace").rstrip("\r")
        del pending[: at + 1]
        return line

    def reply():
        """Prints lines up to and including the next reply; returns it."""
        while True:
            line = read_line()
            if line is None:
                sys.exit("the bridge closed the connection")
            print(line, flush=True)
            if line.startswith(REPLIES):
                return line

    if args.token:
        send("AUTH " + args.token)
        if reply() != "OK AUTH":
            sys.exit("authentication failed")
    failed = False
    for line in args.lines:
        send(line)
        answer = reply()
        failed |= answer.startswith(("ERR ", "ERROR "))
        if answer.startswith("RESULT ") and '"status":"error"' in answer:
            failed = True
    # Unsolicited STATE/EVENT lines (after SUBSCRIBE) for a while.
    deadline = time.monotonic() + args.listen
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            line = read_line()
        except (socket.timeout, TimeoutError):
            break
        if line is None:
            break
        print(line, flush=True)
    sock.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
