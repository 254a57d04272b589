"""`stun-infra local`: the stack's coturn, run on this machine.

Renders the stack's turnserver.conf (the same template and hardening an instance
runs) with this machine's address, a throwaway self-signed certificate and a fresh
random TURN secret, starts `turnserver -c` as a child process, waits until it
answers, probes it (STUN binding over UDP and TCP, TLS, TURN ALLOCATE), prints an
`iceServers` block with short-lived credentials, and serves until Ctrl-C. With
--check it probes and exits 0 or 1. No AWS account is involved.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stun_infra.commands.common import add_stack_arguments, config_folder, fail, stack_settings, timeout_seconds
from stun_infra.instance.coturn import local_paths, turnserver_conf
from stun_infra.instance.secret_sync import fill_store
from stun_infra.client.credentials import ice_servers, mint
from stun_infra.client.targets import InputError, plan_checks, parse_ttl, server_uris
from stun_infra.client.probing import failure_line, progress_line, run_checks, summary, table
from stun_infra.common.text import printable
from stun_infra.settings import ConfigError, Settings
from stun_infra.client.turn_client import make_self_signed, stun_binding

# Whatever the stack's certificate, `local` serves a throwaway self-signed one.
LOCAL_SELF_SIGNED_NOTE = (
    "turns: here uses a throwaway self-signed certificate, which browsers refuse (Chromium: ICE error 701): "
    "in a browser only the turn: UDP and TCP URIs give relay candidates. A deployment with "
    "stun-infra:dnsZoneId/dnsName serves a certificate browsers trust.")
LOCAL_NLB_TLS_NOTE = (
    "this stack ends TLS at its load balancer (ACM's certificate), so coturn serves STUN/TURN over UDP and "
    "TCP only, as here; turns: is the load balancer's and is not served locally.")

STARTUP_DEADLINE = 15.0  # seconds for turnserver to answer a binding after launch
STOP_DEADLINE = 5.0      # seconds for turnserver to exit after SIGTERM before SIGKILL
LOCAL_USER = "local"
INSTALL_HINT = "install it with `sudo apt-get install coturn` (Debian/Ubuntu), then run again"
# Lines with which coturn says it skipped or could not use part of the config (it runs on anyway).
REJECTED_MARKERS = ("Bad configuration format", "Wrong address format", "CONFIG ERROR",
                    "cannot start TLS")
PR_SET_PDEATHSIG = 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("local", help="run coturn here with the stack's config, probe it, print iceServers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(p)
    p.add_argument("--check", action="store_true", help="start, probe, stop: exit 0 if every check passes, else 1")
    p.add_argument("--address", default="127.0.0.1",
                   help="an IPv4 address of this machine to listen and relay on (default: 127.0.0.1)")
    p.add_argument("--ipv6", default=None, metavar="ADDRESS",
                   help="also listen and relay on this IPv6 address of this machine, as an instance with an "
                        "IPv6 address does (e.g. ::1); probed and printed beside the IPv4 one")
    p.add_argument("--dir", type=Path, default=None,
                   help="keep the config, certificate and log here (default: a temporary folder, removed on exit)")
    p.add_argument("--ttl", default="1h", help="lifetime of the printed TURN credentials (default: 1h)")
    p.add_argument("--timeout", default="2", help="seconds per probe attempt, at most 60 (default: 2)")
    p.add_argument("--no-install", action="store_true",
                   help="never install coturn; just say how when it is missing")
    p.set_defaults(run=run)


class LocalError(Exception):
    """Why the local server could not run; one line."""


# -- coturn itself ------------------------------------------------------------------------

def ensure_coturn(*, may_install: bool) -> str:
    """The path of turnserver, installing the coturn package as root with apt-get if allowed."""
    found = shutil.which("turnserver")
    if found:
        return found
    if not may_install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LocalError(f"coturn is not installed (no turnserver on PATH); {INSTALL_HINT}")
    print("local: coturn is not installed; installing it: apt-get install coturn", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "coturn"]):
        try:
            subprocess.run(command, env=env, check=True, timeout=600, stdin=subprocess.DEVNULL,
                           stdout=sys.stderr)
        except (OSError, subprocess.SubprocessError) as e:
            raise LocalError(f"`{' '.join(command)}` failed ({e}); {INSTALL_HINT}") from None
    # Debian starts its own coturn on 3478 after install; this command runs its own.
    if shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--now", "coturn"], capture_output=True, timeout=60)
        print("local: stopped and disabled the system coturn service Debian started", file=sys.stderr)
    found = shutil.which("turnserver")
    if not found:
        raise LocalError(f"coturn was installed but turnserver is not on PATH; {INSTALL_HINT}")
    return found


def check_address(address: str, option: str = "--address", version: int = 4) -> str:
    example = "127.0.0.1" if version == 4 else "::1"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise LocalError(f"{option} {printable(repr(address))}: expected an IPv{version} address of this machine, "
                         f"e.g. {example}") from None
    if ip.version == 6 and ip.scope_id is not None:  # a zone would reach turnserver.conf as it is
        raise LocalError(f"{option} {printable(repr(address))}: give the address without a %zone, e.g. {example}")
    if ip.version != version:
        hint = ("give the IPv4 address with --address and the IPv6 one with --ipv6 (coturn serves both, as "
                "an instance does)") if option == "--address" else "give an IPv6 address, e.g. ::1"
        raise LocalError(f"{option} {address}: {hint}")
    if ip.is_unspecified or ip.is_multicast:
        raise LocalError(f"{option} {address}: give one address of this machine (coturn advertises it to "
                         f"clients), e.g. {example}")
    return str(ip)


def check_ports_free(settings: Settings, address: str) -> None:
    """Bind each listening port once ourselves: coturn binds with SO_REUSEPORT and would
    silently share a port with another coturn instead of failing."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    tls = () if settings.tls.ends_at_load_balancer else ((settings.tls.coturn_port, socket.SOCK_STREAM, "tcp"),)
    for port, kind, proto in ((settings.stun_port, socket.SOCK_DGRAM, "udp"),
                              (settings.stun_port, socket.SOCK_STREAM, "tcp"), *tls):
        with socket.socket(family, kind) as s:
            try:
                s.bind((address, port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    other = port + 10000 if port < 55535 else port - 10000
                    option = f"stunPort={other}" if port == settings.stun_port else f"tlsPorts=[{other}]"
                    raise LocalError(
                        f"address in use: {address} port {port}/{proto} is taken (another coturn? Debian starts "
                        f"one on install: `systemctl stop coturn`), or choose another port: "
                        f"--set {option}") from None
                if e.errno == errno.EADDRNOTAVAIL:
                    raise LocalError(f"--address {address}: not an address of this machine") from None
                raise LocalError(f"cannot bind {address} port {port}/{proto}: {e.strerror}") from None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class LocalServer:
    """turnserver as a child process in its own session, stopped by `stop()`."""

    def __init__(self, turnserver: str, workdir: Path, conf_path: Path, log_path: Path, secret: str):
        self.workdir = workdir
        self.secret = secret
        self.log_path = log_path
        self.stdout_path = workdir / "stdout.log"
        with self.stdout_path.open("wb") as out:
            self.process = subprocess.Popen(
                [turnserver, "-c", str(conf_path), "--pidfile", str(workdir / "turnserver.pid"),
                 "--db", str(local_paths(workdir).secret_db)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop the server ourselves
                preexec_fn=_die_with_parent)

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.log_path, self.stdout_path) if p.exists()]
        return "".join(parts)

    def wait_until_answering(self, address: tuple[str, int], deadline: float) -> None:
        until = time.monotonic() + deadline
        while True:
            if self.process.poll() is not None:
                raise LocalError(f"turnserver exited with code {self.process.returncode} at startup"
                                 f"{self._log_tail()}")
            try:
                asyncio.run(stun_binding(address, timeout=0.25))
                return
            except (TimeoutError, OSError):
                if time.monotonic() > until:
                    raise LocalError(f"turnserver did not answer on {address[0]} port {address[1]}/udp within "
                                     f"{deadline:g}s{self._log_tail()}") from None

    def _log_tail(self) -> str:
        lines = [ln.strip() for ln in self.log().splitlines() if ln.strip()]
        return f"; last log line: {lines[-1]}" if lines else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_DEADLINE)


def rejected_lines(log: str) -> list[str]:
    return [line.strip() for line in log.splitlines() if any(m in line for m in REJECTED_MARKERS)]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# -- the command --------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    try:
        if args.dir is not None:
            config_folder(args.dir, "--dir")
    except ConfigError as e:
        return fail("; ".join(e.problems))  # about an argument: one line
    try:
        settings = stack_settings(args)
        ttl = parse_ttl(args.ttl)
        timeout = timeout_seconds(args.timeout)
        address = check_address(args.address)
        ipv6 = check_address(args.ipv6, "--ipv6", 6) if args.ipv6 else ""
    except ConfigError as e:
        return fail(f"invalid stack config for {args.stack}: " + "; ".join(e.problems))
    except (InputError, LocalError) as e:
        return fail(str(e))

    # `kill PID` cleans up like Ctrl-C; Ctrl-C works even where the shell started us with SIGINT ignored.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    workdir = args.dir.resolve() if args.dir else Path(tempfile.mkdtemp(prefix="stun-infra-local-"))
    server: LocalServer | None = None
    try:
        turnserver = ensure_coturn(may_install=not args.no_install)
        for each in (address, ipv6):
            if each:
                check_ports_free(settings, each)
        server = start(settings, turnserver, workdir, address, ipv6)
        return serve(args, settings, server, address, ttl, timeout, ipv6)
    except LocalError as e:
        return fail(str(e), 1)
    except KeyboardInterrupt:
        print("\nlocal: stopping", file=sys.stderr)
        return 0
    finally:
        if server is not None:
            server.stop()
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start(settings: Settings, turnserver: str, workdir: Path, address: str, ipv6: str = "") -> LocalServer:
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    try:
        make_self_signed(workdir, settings.tls_domain)
    except OSError as e:
        raise LocalError(f"could not make a self-signed certificate in {printable(str(workdir))}: {e}") from None
    paths = local_paths(workdir)
    Path(paths.log_file).unlink(missing_ok=True)
    secret = secrets.token_urlsafe(32)  # per run; only ever shown inside minted credentials
    conf = turnserver_conf(settings, public_ip=address, private_ip=address, turn_secret="", paths=paths,
                           ipv6=ipv6, secret_store=True)
    if settings.turn:
        fill_store(paths.secret_db, settings.realm, secret)  # as an instance's secret sync does
    conf_path = workdir / "turnserver.conf"
    conf_path.touch(mode=0o600)
    conf_path.write_text(conf)
    relay = f"TURN relay {settings.relay_min_port}-{settings.relay_max_port}" if settings.turn else "STUN only"
    tls_text = f"tls {settings.tls.coturn_port}"
    print(f"local: starting turnserver on {address}{' and ' + ipv6 if ipv6 else ''}: stun {settings.stun_port} udp+tcp, "
          f"{'no tls (the load balancer ends it)' if settings.tls.ends_at_load_balancer else tls_text}, "
          f"{relay} (stack {settings.stack})", file=sys.stderr, flush=True)
    if settings.tls.ends_at_load_balancer:
        print(f"local: {LOCAL_NLB_TLS_NOTE}", file=sys.stderr, flush=True)
    elif settings.turn:
        print(f"local: {LOCAL_SELF_SIGNED_NOTE}", file=sys.stderr, flush=True)
    server = LocalServer(turnserver, workdir, conf_path, Path(paths.log_file), secret)
    try:
        server.wait_until_answering((address, settings.stun_port), STARTUP_DEADLINE)
        time.sleep(0.2)  # let coturn flush its startup log
        rejected = rejected_lines(server.log())
        if rejected:
            raise LocalError(f"coturn skipped part of the rendered config (it fails open): {rejected[0]}")
    except BaseException:
        server.stop()
        raise
    return server


def serve(args: argparse.Namespace, settings: Settings, server: LocalServer, address: str, ttl: int,
          timeout: float, ipv6: str = "") -> int:
    stun_uris: list[str] = []
    turn_uris: list[str] = []
    for host in (address, ipv6):
        if host:
            stun, turn = server_uris(host, stun_port=settings.stun_port, tls_port=settings.tls.coturn_port,
                                     turn=settings.turn)
            stun_uris += stun
            turn_uris += turn
    where = f"{address} and {ipv6}" if ipv6 else address
    username, password = mint(server.secret, user=LOCAL_USER, ttl_seconds=ttl)
    if settings.tls.ends_at_load_balancer:  # coturn serves no TLS: the load balancer does
        turn_uris = [u for u in turn_uris if not u.startswith("turns:")]
    checks = [c for c in plan_checks([*stun_uris, *turn_uris], tls_port=settings.tls.coturn_port,
                                     auth=(username, password) if settings.turn else None)
              if not (settings.tls.ends_at_load_balancer and c.kind in ("tls", "turn-tls"))]
    out = sys.stdout if args.check else sys.stderr
    print(f"local: probing {len(checks)} checks", file=sys.stderr, flush=True)
    results = asyncio.run(run_checks(checks, timeout=timeout, retries=1,
                                     progress=lambda r: print(progress_line(r), file=sys.stderr, flush=True)))
    print(table(results), file=out)
    print(summary(results), file=out, flush=True)
    if not all(r.ok for r in results):
        raise LocalError(failure_line(results))
    if args.check:
        print(f"local check passed: coturn with stack {settings.stack}'s config answers on {where}", file=out)
        return 0
    print(json.dumps(ice_servers(stun_uris, turn_uris, username, password), indent=2), flush=True)
    print("local: the block above is an RTCConfiguration: `new RTCPeerConnection({...})`", file=sys.stderr)
    for exposed in (h for h in (address, ipv6) if h and not ipaddress.ip_address(h).is_loopback):
        print(f"local: {exposed} is reachable from the network: anyone holding these credentials can relay "
              "through this machine until they expire", file=sys.stderr)
    print(f"local: serving on {where} until Ctrl-C (credentials valid for {args.ttl}; "
          f"log: {server.log_path if args.dir else 'removed on exit, keep it with --dir'})",
          file=sys.stderr, flush=True)
    while True:
        try:
            code = server.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue
        raise LocalError(f"turnserver exited with code {code} while serving{server._log_tail()}")
