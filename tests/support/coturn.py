"""Fixtures that run the real coturn with configs rendered by stun_infra.instance.coturn.

Each test module gets its own network namespace (loopback plus a veth pair with both
ends inside, on documentation addresses) and its own turnserver process in it; both
are removed when the module ends, whatever happened. Without coturn the tests that
need it skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stun_infra.instance.coturn import CoturnPaths, local_paths, turnserver_conf
from stun_infra.instance.secret_sync import fill_store
from stun_infra.client.credentials import mint
from stun_infra.settings import Settings, load_settings
from stun_infra.client.turn_client import Address, Family, make_self_signed, stun_binding, turn_allocation

from tests.support.netns import PUBLIC_IPV4, SERVER_IPV4, SERVER_IPV6, NetNs

STARTUP_DEADLINE = 15.0  # seconds for coturn to answer a binding after launch
TLS_NAME = "stun-infra.test"


def settings_for(**config: object) -> Settings:
    """Project defaults plus `config` (camelCase keys, as in Pulumi config)."""
    return load_settings({"relayMinPort": 50000, "relayMaxPort": 50099, **config},
                         stack="test", region="eu-west-3")


def require(what: str, needs: tuple[tuple[object, str], ...]) -> None:
    """Skip when a need (truthy, or the reason why not) is missing; fail instead under CI=true."""
    missing = [why for ok, why in needs if not ok]
    if missing:
        message = "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the {what} tests: {message}")
        pytest.skip(message)


def require_coturn() -> None:
    require("coturn", (
        (shutil.which("turnserver"), "coturn is not installed (no turnserver)"),
        (shutil.which("ip"), "iproute2 is not installed (no ip)"),
        (shutil.which("openssl"), "openssl is not installed"),
        (os.geteuid() == 0, "network namespaces need root"),
    ))


@dataclass
class CoturnServer:
    """A turnserver running in `ns` with a rendered config."""

    ns: NetNs
    settings: Settings
    secret: str
    conf: str
    paths: CoturnPaths
    stdout: Path
    process: subprocess.Popen[bytes]
    host: str = SERVER_IPV4
    boot_log: str = ""  # the log as it stood when the server first answered

    @property
    def stun_address(self) -> Address:
        return (self.host, self.settings.stun_port)

    @property
    def tls_address(self) -> Address:
        return (self.host, self.settings.tls.coturn_port)

    def startup_log(self) -> str:
        """Everything coturn wrote: its log file, then stdout/stderr."""
        log = Path(self.paths.log_file)
        return (log.read_text(errors="replace") if log.exists() else "") + \
            self.stdout.read_text(errors="replace")

    def credentials(self, ttl_seconds: int = 600, user: str | None = None) -> tuple[str, str]:
        """Fresh credentials, by default for a user of their own: coturn 4.6.1 keeps counting
        a deleted allocation against its user's quota for a while (see the quota test)."""
        return mint(self.secret, ttl_seconds=ttl_seconds, user=user or f"test-{secrets.token_hex(4)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_coturn(ns: NetNs, workdir: Path, settings: Settings, *, extra_lines: tuple[str, ...] = (),
                 host: str = SERVER_IPV4, ipv6: str = "", certificate: tuple[str, str] | None = None,
                 public_ip: str = PUBLIC_IPV4) -> CoturnServer:
    """Render the config into `workdir` (with `ipv6` as the instance's IPv6 address, if
    any), launch turnserver in `ns`, return once it answers on `host`. `certificate`
    (cert PEM, key PEM) replaces the self-signed one; `public_ip` equal to SERVER_IPV4
    makes relayed addresses reachable inside the namespace (no 1:1 NAT there). The TURN
    secret is in coturn's store (`paths.secret_db`), filled as an instance's secret sync does."""
    make_self_signed(workdir, TLS_NAME)
    paths = local_paths(workdir)
    if certificate:
        Path(paths.cert).write_text(certificate[0])
        Path(paths.key).write_text(certificate[1])
    secret = secrets.token_urlsafe(32) if settings.turn else ""
    if secret:
        fill_store(paths.secret_db, settings.realm, secret)
    conf = turnserver_conf(settings, public_ip=public_ip, private_ip=SERVER_IPV4,
                           turn_secret="", paths=paths, ipv6=ipv6, secret_store=True)
    conf += "".join(f"{line}\n" for line in extra_lines)
    conf_path = workdir / "turnserver.conf"
    conf_path.write_text(conf)
    stdout = workdir / "stdout.log"
    with stdout.open("wb") as out:
        process = ns.popen(["turnserver", "-c", str(conf_path),
                            "--pidfile", str(workdir / "turnserver.pid"),
                            "--db", paths.secret_db],
                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = CoturnServer(ns, settings, secret, conf, paths, stdout, process, host)
    try:
        _wait_until_answering(server)
    except BaseException:
        server.stop()
        raise
    server.boot_log = server.startup_log()
    return server


def _wait_until_answering(server: CoturnServer) -> None:
    """Poll with a STUN binding (bounded), failing early if the process exits."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"turnserver exited with {server.process.returncode}:\n{server.startup_log()}")
        try:
            server.ns.run_async(stun_binding, server.stun_address, timeout=0.25, deadline=2)
            return
        except (TimeoutError, OSError):
            if time.monotonic() > deadline:
                pytest.fail(f"turnserver did not answer within {STARTUP_DEADLINE}s:\n{server.startup_log()}")


@contextmanager
def running_coturn(ns: NetNs, workdir: Path, settings: Settings, **options) -> Iterator[CoturnServer]:
    """start_coturn(...), stopped by pid on the way out whatever happened."""
    server = start_coturn(ns, workdir, settings, **options)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def named_dual_stack_coturn(ns: NetNs, tmp_path_factory: pytest.TempPathFactory, name: str,
                            **options) -> Iterator[CoturnServer]:
    """coturn on both ends of the namespace's veth pair, its TLS certificate naming `name`
    (probe fails a TLS endpoint whose certificate names another host)."""
    stem = name.split(".")[1]
    cert, key = make_self_signed(tmp_path_factory.mktemp(f"{stem}-cert"), name)
    with running_coturn(ns, tmp_path_factory.mktemp(stem), settings_for(), ipv6=SERVER_IPV6,
                        certificate=(cert.read_text(), key.read_text()), **options) as server:
        yield server


@pytest.fixture(scope="module")
def netns() -> Iterator[NetNs]:
    require_coturn()
    with NetNs() as ns:
        yield ns


@pytest.fixture(scope="module")
def turn_server(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """TURN mode, exactly the rendered config (project defaults)."""
    with running_coturn(netns, tmp_path_factory.mktemp("turn"), settings_for()) as server:
        yield server


@pytest.fixture(scope="module")
def stun_only_server(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """STUN-only mode (stun-infra:turn false), exactly the rendered config."""
    with running_coturn(netns, tmp_path_factory.mktemp("stun-only"), settings_for(turn=False)) as server:
        yield server


# -- client helpers: every call runs on the namespace's thread -------------------------

REJECTED_LOG_MARKERS = ("Bad configuration format", "Wrong address format", "ERROR")


def rejected_lines(log: str) -> list[str]:
    """Lines where coturn says it skipped or could not use part of the config."""
    return [line for line in log.splitlines() if any(m in line for m in REJECTED_LOG_MARKERS)]


def permission_code(server: CoturnServer, peer_ip: str, family: Family | None = None) -> int | None:
    """CreatePermission toward `peer_ip` from a fresh allocation (of relay `family`, if given):
    None if granted, else the code."""
    async def go() -> int | None:
        async with turn_allocation(server.stun_address, *server.credentials(), timeout=2, family=family) as relay:
            return await relay.create_permission(peer_ip)
    return server.ns.run_async(go)


def channel_bind_code(server: CoturnServer, peer: Address, family: Family | None = None) -> int | None:
    """ChannelBind toward `peer` from a fresh allocation (of relay `family`, if given): None if
    bound, else the code."""
    async def go() -> int | None:
        async with turn_allocation(server.stun_address, *server.credentials(), timeout=2, family=family) as relay:
            return await relay.channel_bind(peer)
    return server.ns.run_async(go)


class _Echo(asyncio.DatagramProtocol):
    """A UDP peer that sends every datagram back and remembers who sent it."""

    def __init__(self) -> None:
        self.senders: list[Address] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.senders.append((addr[0], addr[1]))
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


def relay_round_trip(server: CoturnServer, peer_ip: str, payload: bytes,
                     family: Family | None = None) -> tuple[bytes, Address, Address, list[Address]]:
    """Relay `payload` to a UDP echo on `peer_ip` (inside the namespace) and back.

    Returns (what came back, the peer it came from, the relayed address, who the echo saw).
    """
    async def go() -> tuple[bytes, Address, Address, list[Address]]:
        loop = asyncio.get_running_loop()
        echo_transport, echo = await loop.create_datagram_endpoint(_Echo, local_addr=(peer_ip, 0))
        try:
            peer = echo_transport.get_extra_info("sockname")[:2]
            async with turn_allocation(server.stun_address, *server.credentials(), timeout=2,
                                       family=family) as relay:
                await relay.send(payload, peer)
                data, sender = await relay.receive()
                return data, sender, relay.relayed_address, echo.senders
        finally:
            echo_transport.close()
    return server.ns.run_async(go)
