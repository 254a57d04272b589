"""A throwaway network namespace, and a thread that lives inside it.

Every socket the test client opens is created by `NetNs.run` on a worker thread that
has joined the namespace with setns(2) (a network namespace is per thread), so test
code stays ordinary Python in the pytest process while each packet it sends stays in
a namespace holding only loopback and a veth pair whose two ends are both inside it.
Nothing can leave this machine.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
# Two ends of one veth pair, both inside the namespace. Documentation ranges
# (TEST-NET-2, 2001:db8::/32): coturn's deny list leaves them allowed on purpose.
SERVER_IPV4, PEER_IPV4 = "198.51.100.1", "198.51.100.2"
SERVER_IPV6, PEER_IPV6 = "2001:db8::1", "2001:db8::2"
PUBLIC_IPV4 = "203.0.113.10"  # what external-ip tells clients; never used as a destination
# Internal IPv6 peers in every notation a client can write: a relay must refuse each (403).
INTERNAL_IPV6 = [
    "::ffff:169.254.169.254",  # IPv4-mapped metadata service (CVE-2026-27624 below 4.9.0)
    "::ffff:a9fe:a9fe",        # the same, hex notation
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::a9fe:a9fe",             # IPv4-compatible (deprecated)
    "::1", "::",
    "fd00:ec2::254",           # AWS metadata service over IPv6
    "fd00:ec2::253",           # AWS DNS over IPv6
    "fe80::1", "ff02::1", "fec0::1",
    "64:ff9b::a9fe:a9fe",      # NAT64 of 169.254.169.254
    "64:ff9b:1::a9fe:a9fe",
    "2002:a9fe:a9fe::1",       # 6to4 of 169.254.169.254
    "2001:0:a9fe:a9fe::1",     # Teredo
    "100::1",
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _join(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class NetNs:
    """`ip netns add` on creation; `close()` stops the worker thread and deletes it by name."""

    def __init__(self, prefix: str = "stun-test", *, veth: bool = True):
        """With `veth` false the namespace holds loopback alone (see `link_ipv6_only`)."""
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self._worker: ThreadPoolExecutor | None = None
        _ip("netns", "add", self.name)
        try:
            n = ("-n", self.name)
            _ip(*n, "link", "set", "lo", "up")
            if veth:
                _ip(*n, "link", "add", "veth-srv", "type", "veth", "peer", "name", "veth-peer")
                _ip(*n, "addr", "add", f"{SERVER_IPV4}/24", "dev", "veth-srv")
                _ip(*n, "addr", "add", f"{PEER_IPV4}/24", "dev", "veth-peer")
                _ip(*n, "addr", "add", f"{SERVER_IPV6}/64", "dev", "veth-srv", "nodad")
                _ip(*n, "addr", "add", f"{PEER_IPV6}/64", "dev", "veth-peer", "nodad")
                _ip(*n, "link", "set", "veth-srv", "up")
                _ip(*n, "link", "set", "veth-peer", "up")
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name,
                                              initializer=_join, initargs=(self.name,))
        except BaseException:
            self.close()
            raise

    def run(self, fn: Callable[..., T], /, *args: object, deadline: float = 30, **kwargs: object) -> T:
        """fn(*args, **kwargs) on the thread inside the namespace, waited for at most `deadline` s."""
        assert self._worker is not None
        return self._worker.submit(fn, *args, **kwargs).result(timeout=deadline)

    def run_async(self, coro_fn: Callable[..., Awaitable[T]], /, *args: object, deadline: float = 30,
                  **kwargs: object) -> T:
        """asyncio.run(coro_fn(*args, **kwargs)) on the thread inside the namespace."""
        async def bounded() -> T:
            return await asyncio.wait_for(coro_fn(*args, **kwargs), deadline)
        return self.run(lambda: asyncio.run(bounded()), deadline=deadline + 5)

    def popen(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """A process inside the namespace (`ip netns exec` execs it: same pid)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)  # type: ignore[call-overload]

    @contextmanager
    def hosts(self, text: str) -> Iterator[None]:
        """Names that resolve only in here: `ip netns exec` mounts /etc/netns/NAME/hosts over
        /etc/hosts for what it runs."""
        folder = Path("/etc/netns") / self.name
        folder.mkdir(parents=True)
        try:
            (folder / "hosts").write_text(text)
            yield
        finally:
            shutil.rmtree(folder)

    def __enter__(self) -> "NetNs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, timeout=10)


# An IPv6-only client network: a veth pair from a client namespace into the server's.
V6ONLY_GATEWAY, V6ONLY_CLIENT = "2001:db8:6::1", "2001:db8:6::2"


def link_ipv6_only(server: NetNs, client: NetNs) -> None:
    """Give `client` one interface with one IPv6 address and an IPv6 default route into
    `server` (whose own addresses it then reaches); no IPv4 at all besides loopback."""
    _ip("-n", server.name, "link", "add", "v6-gw", "type", "veth", "peer", "name", "v6-only", "netns", client.name)
    _ip("-n", server.name, "addr", "add", f"{V6ONLY_GATEWAY}/64", "dev", "v6-gw", "nodad")
    _ip("-n", client.name, "addr", "add", f"{V6ONLY_CLIENT}/64", "dev", "v6-only", "nodad")
    _ip("-n", server.name, "link", "set", "v6-gw", "up")
    _ip("-n", client.name, "link", "set", "v6-only", "up")
    _ip("-n", client.name, "-6", "route", "add", "default", "via", V6ONLY_GATEWAY)
