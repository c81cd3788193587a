#!/usr/bin/env python3
"""TrueConf's official Python client (python-trueconf-room) against a Room simulator.

Run by `cargo bench --bench bridge` (scenario `python_client`), which starts the simulator,
makes a virtualenv with the library and runs this script with it. The Rust RoomClient runs the
same workload in a process of its own next to it (benches/bridge/python_client.rs).

Usage: python_client.py --port HTTP_PORT --pin PIN [--method getMicMute] [--queued 100]
                        [--direct 2000] [--idle 3]

Measures, one request at a time, each timed from the call to the reply reaching a handler:
- connect: open_session() until the client is ready (authenticated);
- first response: the first request after that;
- queued: requests through the library's API (room.command / room.methods.*), which puts them
  in a queue that a thread drains one every 50 ms;
- direct: the same requests written straight to the WebSocket (the library's private
  __send_to_websocket), to tell the queue's cost from the rest of the client;
- idle: RSS (VmRSS), CPU and wakeups over a few idle seconds after the runs.

Prints one JSON object on the last line of stdout (times in µs, samples in ns).
"""
import argparse
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def usage():
    """(on-CPU ns, voluntary context switches) summed over this process's threads."""
    cpu_ns, voluntary = 0, 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                cpu_ns += int(f.read().split()[0])
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended meanwhile
    return cpu_ns, voluntary


def percentile(sorted_ns, q):
    """Nearest rank, in µs (as the Rust benchmarks compute it)."""
    if not sorted_ns:
        return 0.0
    rank = min(max(math.ceil(q * len(sorted_ns)), 1), len(sorted_ns))
    return sorted_ns[rank - 1] / 1000.0


def run(one, count):
    """`count` requests one at a time; returns (sorted samples in ns, requests/s, errors)."""
    samples, errors = [], 0
    started = time.perf_counter_ns()
    for _ in range(count):
        ns = one()
        if ns is None:
            errors += 1
        else:
            samples.append(ns)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    samples.sort()
    return samples, len(samples) / max(elapsed, 1e-9), errors


def summary(prefix, samples, per_s, errors):
    return {
        f"{prefix}commands": len(samples),
        f"{prefix}errors": errors,
        f"{prefix}commands_per_s": per_s,
        f"{prefix}p50_us": percentile(samples, 0.50),
        f"{prefix}p99_us": percentile(samples, 0.99),
        f"{prefix}max_us": percentile(samples, 1.0),
        f"{prefix}samples_ns": samples,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="the Room's HTTP port")
    parser.add_argument("--pin", default=None)
    parser.add_argument("--method", default="getMicMute")
    parser.add_argument("--queued", type=int, default=100)
    parser.add_argument("--direct", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()

    # The library opens videosdk.log in the working directory when it is imported.
    os.chdir(tempfile.mkdtemp())
    import trueconf_room
    from importlib.metadata import version

    logging.disable(logging.CRITICAL)

    started = time.perf_counter_ns()
    room = trueconf_room.open_session(ip="127.0.0.1", port=args.port, pin=args.pin)
    deadline = time.monotonic() + 10
    while not room.isReady():
        if time.monotonic() > deadline:
            raise SystemExit("the client did not become ready within 10 s")
        time.sleep(0.0005)
    connect_us = (time.perf_counter_ns() - started) / 1000.0

    reply = threading.Event()
    stamp = [0]

    @room.handler({"method": args.method, "result": None})
    def on_reply(_response):
        stamp[0] = time.perf_counter_ns()
        reply.set()

    command = {"method": args.method}

    def one(send):
        reply.clear()
        sent = time.perf_counter_ns()
        send()
        if not reply.wait(5.0):
            return None
        return stamp[0] - sent

    def queued():
        return one(lambda: room.command(dict(command)))

    def direct():
        return one(lambda: room._VideoSDK__send_to_websocket(dict(command)))

    first = queued()
    result = {
        "client": f"python-trueconf-room {version('python-trueconf-room')}",
        "python": sys.version.split()[0],
        "connect_us": connect_us,
        "first_response_us": (first or 0) / 1000.0,
    }
    result.update(summary("", *run(queued, args.queued)))
    result.update(summary("direct_", *run(direct, args.direct)))

    time.sleep(0.5)
    cpu0, voluntary0 = usage()
    idle_started = time.perf_counter_ns()
    time.sleep(args.idle)
    cpu1, voluntary1 = usage()
    wall = (time.perf_counter_ns() - idle_started) / 1e9
    result["idle_rss_mb"] = rss_mb()
    result["idle_cpu_pct"] = (cpu1 - cpu0) / 1e9 / wall * 100.0
    result["idle_wakeups_per_s"] = (voluntary1 - voluntary0) / wall

    room.close_session()
    print(json.dumps(result), flush=True)
    # The library's WebSocket thread never ends by itself.
    os._exit(0)


if __name__ == "__main__":
    main()
