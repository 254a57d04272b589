"""Run `endpoints.Check`s against live servers: bounded, retried, one result line each.

The network work is `stun_infra.client.turn_client`'s; this module decides what counts as a
pass, turns every failure into one readable line, and prints the table or the JSON.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography import x509

from stun_infra.client.targets import Check, is_address, split_families
from stun_infra.client.turn_client import StunError, stun_binding, tls_context, tls_handshake, turn_allocation
from stun_infra.common.certificates import dns_names, name_matches


CONCURRENCY = 16
EXPIRY_WARNING_DAYS = 14  # days left that mark a certificate SOON
CERT_EXPIRY_WARNING_DAYS = 7  # days left under which a trusted name check fails: renew


@dataclass
class Result:
    check: Check
    status: str                    # ok, fail, skipped
    detail: str
    rtt_ms: float | None = None    # STUN: the binding's round trip; TLS, TURN: the whole exchange
    attempts: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    region: str = ""  # several regions: where the endpoint is, or which region answered the global one

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.check.endpoint, "host": self.check.host, "port": self.check.port,
                "family": self.check.family,
                "check": self.check.kind, "status": self.status, "ok": self.ok,
                "rtt_ms": round(self.rtt_ms, 2) if self.rtt_ms is not None and self.check.kind.startswith("stun")
                else None,
                "attempts": self.attempts, "detail": self.detail, **self.facts,
                **({"region": self.region} if self.region else {})}


class _Failed(Exception):
    """A definitive failure (no retry), with its one-line reason."""


def _addr(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def describe(exc: BaseException, check: Check, timeout: float) -> str:
    """One line for any failure a check can meet."""
    if isinstance(exc, _Failed):
        return str(exc)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, socket.timeout)):
        hint = " (closed, filtered or not a STUN server?)" if check.kind.endswith("udp") else ""
        return f"no answer within {timeout:g}s{hint}"
    if isinstance(exc, StunError):
        if exc.code == 401 and check.turn:
            return "TURN credentials rejected (401)"
        return f"STUN error {exc.code}: {exc.reason}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {check.host}: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused (nothing listening on tcp {check.endpoint})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


async def families_of(hosts: set[str], timeout: float) -> dict[str, set[int]]:
    """Which address families each host name resolves to (empty when it does not resolve)."""
    loop = asyncio.get_running_loop()

    async def one(host: str) -> set[int]:
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), timeout)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            return set()
        return {4 if info[0] == socket.AF_INET else 6 for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)}

    names = sorted(h for h in hosts if not is_address(h))
    return dict(zip(names, await asyncio.gather(*(one(h) for h in names))))


async def with_families(checks: Sequence[Check], timeout: float) -> list[Check]:
    """`checks`, with every check on a dual-stack name split into one per family."""
    return split_families(checks, await families_of({c.host for c in checks}, timeout))


async def _server(check: Check) -> tuple[str, int]:
    """Where to connect: the host itself, or its address of the check's family."""
    if not check.family:
        return check.host, check.port
    family = socket.AF_INET if check.family == 4 else socket.AF_INET6
    infos = await asyncio.get_running_loop().getaddrinfo(check.host, check.port, family=family,
                                                         type=socket.SOCK_DGRAM)
    return infos[0][4][0], check.port


async def _stun(check: Check, timeout: float) -> tuple[str, dict[str, Any]]:
    transport = "udp" if check.kind == "stun-udp" else "tcp"
    binding = await stun_binding(await _server(check), transport=transport, timeout=timeout)
    mapped = _addr(binding.mapped_address)
    return f"mapped {mapped}", {"mapped_address": mapped, "rtt_ms": binding.rtt * 1000}


def _tls(check: Check, timeout: float, server: tuple[str, int]) -> tuple[str, dict[str, Any]]:
    """Handshake, then the certificate's trust (system store), name and days left. A name
    that does not match or an expiry within CERT_EXPIRY_WARNING_DAYS fails (browsers would
    refuse it soon or now); an untrusted one (the self-signed default) is reported."""
    chain_only = ssl.create_default_context()  # the system store; the name is checked below
    chain_only.minimum_version = ssl.TLSVersion.TLSv1_2
    chain_only.check_hostname = False
    try:
        handshake = tls_handshake(server, timeout=timeout, context=chain_only, server_name=_sni(check.host))
        trusted, trust = True, "trusted (system store)"
    except ssl.SSLCertVerificationError as e:
        handshake = tls_handshake(server, timeout=timeout, context=tls_context(), server_name=_sni(check.host))
        trusted, trust = False, f"not trusted: {e.verify_message}"  # expected of the self-signed default
    names = dns_names(x509.load_der_x509_certificate(handshake.certificate)) if handshake.certificate else []
    name_ok = None if is_address(check.host) else name_matches(check.host, names)
    facts: dict[str, Any] = {"tls_version": handshake.version, "cipher": handshake.cipher,
                             "certificate_verified": trusted and name_ok is not False,
                             "certificate_trusted": trusted, "certificate_names": names,
                             "certificate_name_match": name_ok,
                             "certificate_not_after": handshake.not_after.isoformat() if handshake.not_after else None}
    if name_ok is False:
        raise _Failed(f"{handshake.version}: certificate names {', '.join(names) or 'no DNS name'}, "
                      f"not {check.host}: browsers refuse it")
    name = "name not checked (an address)" if name_ok is None else f"name {check.host} matches"
    if handshake.not_after is None:
        return f"{handshake.version} {handshake.cipher}, {trust}, {name}, certificate expiry unreadable", facts
    days = days_left_until(handshake.not_after)
    facts["certificate_days_left"] = days
    if days < 0:
        raise _Failed(f"{handshake.version}: certificate expired on {handshake.not_after:%Y-%m-%d}")
    if days < CERT_EXPIRY_WARNING_DAYS:
        raise _Failed(f"{handshake.version}: certificate expires in {days} days ({handshake.not_after:%Y-%m-%d}), "
                      f"under {CERT_EXPIRY_WARNING_DAYS}: renew it")
    soon = " SOON" if days < EXPIRY_WARNING_DAYS else ""
    expiry = f"{days} days left (expires {handshake.not_after:%Y-%m-%d}){soon}"
    return f"{handshake.version} {handshake.cipher}, {trust}, {name}, {expiry}", facts


def _sni(host: str) -> str | None:
    return None if is_address(host) else host


def days_left_until(not_after: datetime) -> int:
    return int((not_after - datetime.now(timezone.utc)).total_seconds() // 86400)


async def _turn(check: Check, timeout: float) -> tuple[str, dict[str, Any]]:
    assert check.auth is not None
    transport = "udp" if check.kind == "turn-udp" else "tcp"
    ssl_context = tls_context() if check.kind == "turn-tls" else None
    async with turn_allocation(await _server(check), *check.auth, transport=transport, timeout=timeout,
                               ssl_context=ssl_context) as allocation:
        relayed, mapped = _addr(allocation.relayed_address), _addr(allocation.mapped_address)
    return f"relayed {relayed}, mapped {mapped}", {"relayed_address": relayed, "mapped_address": mapped}


async def _attempt(check: Check, timeout: float) -> tuple[str, dict[str, Any]]:
    if check.kind.startswith("stun"):
        return await _stun(check, timeout)
    if check.kind == "tls":
        return await asyncio.to_thread(_tls, check, timeout, await _server(check))
    return await _turn(check, timeout)


async def run_check(check: Check, *, timeout: float, retries: int) -> Result:
    """One check, retried on timeouts only (a refusal or a 401 is an answer)."""
    if check.turn and check.auth is None:
        return Result(check, "skipped", "no TURN credentials (give --secret, or stack outputs with "
                                        "turn_shared_secret)")
    attempts = 0
    while True:
        attempts += 1
        started = time.monotonic()
        try:
            # The outer bound covers what the inner timeouts do not (connect + handshake + release).
            detail, facts = await asyncio.wait_for(_attempt(check, timeout), timeout * 3)
        except (TimeoutError, asyncio.TimeoutError, socket.timeout) as e:
            if attempts <= retries:
                continue
            tries = f" ({attempts} tries)" if attempts > 1 else ""
            return Result(check, "fail", describe(e, check, timeout) + tries, attempts=attempts)
        except Exception as e:  # noqa: BLE001 - every failure becomes one line of the report
            return Result(check, "fail", describe(e, check, timeout), attempts=attempts)
        elapsed = (time.monotonic() - started) * 1000
        rtt = facts.pop("rtt_ms", elapsed)
        return Result(check, "ok", detail, rtt_ms=rtt, attempts=attempts, facts={**facts, "elapsed_ms": round(elapsed, 2)})


async def run_checks(checks: Sequence[Check], *, timeout: float, retries: int,
                     progress: Callable[[Result], None] | None = None) -> list[Result]:
    """All checks, at most CONCURRENCY at once; results in the order of `checks`.

    The STUN bindings run first, on their own, so that TLS handshakes and TURN
    allocations in flight do not inflate the round-trip times they measure.
    """
    gate = asyncio.Semaphore(CONCURRENCY)
    results: dict[int, Result] = {}

    async def one(index: int, check: Check) -> None:
        async with gate:
            results[index] = await run_check(check, timeout=timeout, retries=retries)
        if progress:
            progress(results[index])

    for phase in (True, False):
        await asyncio.gather(*(one(i, c) for i, c in enumerate(checks) if c.kind.startswith("stun") is phase))
    return [results[i] for i in range(len(checks))]


def progress_line(result: Result) -> str:
    rtt = f" {result.rtt_ms:.1f} ms" if result.rtt_ms is not None else ""
    return f"  {result.check.endpoint} {result.check.kind}: {result.status}{rtt}" + \
        ("" if result.status == "ok" else f" ({result.detail})")


def table(results: Sequence[Result]) -> str:
    """One row per check; a REGION column when the stack has several regions."""
    regional = any(r.region for r in results)
    rows = [("ENDPOINT", *(("REGION",) if regional else ()), "CHECK", "RESULT", "TIME", "DETAIL")]
    for r in results:
        rows.append((r.check.endpoint, *((r.region or "-",) if regional else ()), r.check.kind,
                     r.status.upper() if r.status == "fail" else r.status,
                     "" if r.rtt_ms is None else f"{r.rtt_ms:.1f} ms", r.detail))
    columns = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:columns], widths)) + "  " + row[columns]
                     for row in rows)


def summary(results: Sequence[Result]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "fail", "skipped")}
    return f"{len(results)} checks: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def failure_line(results: Sequence[Result]) -> str:
    """One line naming every failed check (for `error: ...`)."""
    failed = [r for r in results if not r.ok]
    return f"{len(failed)} of {len(results)} checks failed: " + \
        "; ".join(f"{r.check.endpoint} {r.check.kind}: {r.detail}" for r in failed)


def as_json(results: Sequence[Result]) -> dict[str, Any]:
    return {"ok": all(r.ok for r in results), "summary": summary(results),
            "checks": [r.as_dict() for r in results]}

