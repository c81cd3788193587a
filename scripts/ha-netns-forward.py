"""Connect a private network namespace's loopback with the host's, for chosen ports only.

scripts/ha-current.sh runs Home Assistant in a network namespace of its own, so whatever it
binds (its HTTP port, and the mDNS socket on UDP 5353 that current versions open for their DNS
resolver) stays there, never on the host's ports or network. Started inside that namespace with
a file descriptor of the host's namespace, this process:

* for each --into PORT, listens on the host's 127.0.0.1:PORT and passes connections to
  127.0.0.1:PORT in the namespace (the tests reach Home Assistant's HTTP API);
* for each --out PORT, listens on 127.0.0.1:PORT in the namespace and passes connections to the
  host's 127.0.0.1:PORT (Home Assistant reaches the tests' broker);
* prints `ready` once every listener is up, and ends when its parent (Home Assistant) does.

Standard library only (Python 3.9+): sockets are created in a namespace by switching the thread
into it with setns(2) for the socket() call; a socket keeps the namespace it was made in.
"""

import argparse
import asyncio
import ctypes
import os
import signal
import socket
import sys

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
# Bytes moved per read; any size works, this one keeps syscalls few for HTTP bodies.
CHUNK = 65536
# Pending connections per listener; the tests open a handful at once.
BACKLOG = 64
# How often the parent is checked (a second guard besides PR_SET_PDEATHSIG).
PARENT_CHECK_S = 0.5

libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Namespaces:
    def __init__(self, host_fd: int) -> None:
        self.host = host_fd
        self.own = os.open("/proc/self/ns/net", os.O_RDONLY)

    def socket_in(self, where: str) -> socket.socket:
        """A TCP socket in the host's ('host') or the private ('own') namespace."""
        setns(self.host if where == "host" else self.own)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            setns(self.own)
        sock.setblocking(False)
        return sock


async def pump(src: socket.socket, dst: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await loop.sock_recv(src, CHUNK)
            if not data:
                break
            await loop.sock_sendall(dst, data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


async def relay(client: socket.socket, ns: Namespaces, where: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    upstream = ns.socket_in(where)
    try:
        await loop.sock_connect(upstream, ("127.0.0.1", port))
    except OSError:
        upstream.close()
        client.close()
        return
    await asyncio.gather(pump(client, upstream), pump(upstream, client))
    upstream.close()
    client.close()


async def serve(listener: socket.socket, ns: Namespaces, where: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    while True:
        client, _ = await loop.sock_accept(listener)
        client.setblocking(False)
        asyncio.ensure_future(relay(client, ns, where, port))


async def watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_S)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-netns-fd", type=int, required=True)
    parser.add_argument("--into", type=int, action="append", default=[])
    parser.add_argument("--out", type=int, action="append", default=[])
    args = parser.parse_args()

    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return
    ns = Namespaces(args.host_netns_fd)
    tasks = []
    for port, listen_in, target in [(p, "host", "own") for p in args.into] + [
        (p, "own", "host") for p in args.out
    ]:
        listener = ns.socket_in(listen_in)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(BACKLOG)
        tasks.append(asyncio.ensure_future(serve(listener, ns, target, port)))
    print("ready", flush=True)
    await watch_parent(parent)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
