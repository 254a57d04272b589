"""What the client-side commands (`probe`, `credentials`, `local`) take in.

Targets on the command line, stack outputs (or an `iceServers` block) on stdin, TTLs.
Everything here is pure: it parses text and returns values or raises `InputError`,
whose message is one line meant to follow `error: `.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from stun_infra.common.text import printable
from stun_infra.settings.keys import MAX_RECOMMENDED_TTL
from stun_infra.settings.tls import TURNS_PORT, TlsPlan

DEFAULT_STUN_PORT = 3478
DEFAULT_TLS_PORT = TURNS_PORT  # turns: when a URI names no port (RFC 7065)
# A secret rotation keeps the retired secret valid for this long (and a little more): a
# credential that outlived it would be refused before it expired.
MAX_TTL_SECONDS = int(MAX_RECOMMENDED_TTL.total_seconds())
TTL_FORMS = "a whole number with a unit, such as 30s, 15m, 1h or 1d (from 1s to 24h)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PIPE_HINT = "pipe `pulumi stack output --json --show-secrets`"

CHECK_KINDS: tuple[str, ...] = ("stun-udp", "stun-tcp", "tls", "turn-udp", "turn-tcp", "turn-tls")


class InputError(ValueError):
    """Bad user input; the message is one line."""


# -- TTL --------------------------------------------------------------------------------

def parse_ttl(text: str) -> int:
    """Seconds for `30s`, `15m`, `1h`, `1d` (a bare number is seconds); 1s to 24h."""
    m = re.fullmatch(r"\s*(\d{1,9})\s*([smhd]?)\s*", text.lower())
    if not m:
        raise InputError(f"--ttl {text!r}: expected {TTL_FORMS}")
    seconds = int(m[1]) * _UNITS[m[2] or "s"]
    if seconds < 1:
        raise InputError(f"--ttl {text!r}: must be at least 1s; expected {TTL_FORMS}")
    if seconds > MAX_TTL_SECONDS:
        raise InputError(f"--ttl {text!r}: at most 24h (a secret rotation keeps the previous secret "
                         "valid that long, so a longer-lived credential could be refused before it expires); "
                         f"expected {TTL_FORMS}")
    return seconds


# -- hosts and URIs ---------------------------------------------------------------------

def uri_host(host: str) -> str:
    """`host` as it appears in a URI: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host else host


def endpoint_label(host: str, port: int) -> str:
    return f"{uri_host(host)}:{port}"


def server_uris(host: str, *, stun_port: int = DEFAULT_STUN_PORT, tls_port: int = DEFAULT_TLS_PORT,
                turn: bool = True) -> tuple[list[str], list[str]]:
    """(stun_uris, turn_uris) of one server, in the form the stack outputs use."""
    h = uri_host(host)
    stun = [f"stun:{h}:{stun_port}"]
    if not turn:
        return stun, []
    return stun, [f"turn:{h}:{stun_port}?transport=udp", f"turn:{h}:{stun_port}?transport=tcp",
                  f"turns:{h}:{tls_port}?transport=tcp"]


def stack_uris(hosts: list[str], *, stun_port: int, turn: bool, tls: TlsPlan) -> tuple[list[str], list[str]]:
    """(stun_uris, turn_uris) of a stack whose clients reach `hosts`: the URIs that work first.
    `turns:` names the certificate's host on every TLS port (443 first) when it is trusted;
    with the self-signed default it stays last, per address, since browsers refuse it."""
    stun_uris: list[str] = []
    turn_uris: list[str] = []
    for host in hosts:
        for port in (tls.ports if not tls.host else ()) or (tls.coturn_port,):
            s, t = server_uris(host, stun_port=stun_port, tls_port=port, turn=turn)
            stun_uris += [u for u in s if u not in stun_uris]
            turn_uris += [u for u in t if u not in turn_uris]
    plain = [u for u in turn_uris if not u.startswith("turns:")]
    secure = [u for u in turn_uris if u.startswith("turns:")]
    if tls.host and turn:
        secure = [f"turns:{tls.host}:{port}?transport=tcp" for port in tls.ports]
    elif tls.trusted:
        secure = []  # a certificate naming only wildcards, and no dnsName: no host name to give turns:
    return stun_uris, plain + secure


def parse_port(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise InputError(f"{printable(what)}: port {printable(repr(text))} must be a number from 1 to 65535")
    return int(text)


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_host_name(text: str) -> bool:
    """A DNS host name (RFC 1123 labels, 253 characters at most, one trailing dot allowed)
    that cannot be mistaken for an IPv4 address: the last label is not all digits."""
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    return (len(text) <= 253 and all(_LABEL.fullmatch(label) for label in labels)
            and not labels[-1].isdigit())


def split_host_port(text: str, default_port: int, what: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal."""
    what = printable(what)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InputError(f"{what}: unclosed '[' in {text!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise InputError(f"{what}: expected [IPv6]:port, got {text!r}")
        port = parse_port(rest[1:], what) if rest else default_port
    elif text.count(":") > 1:
        host, port = text, default_port  # a bare IPv6 literal
    elif ":" in text:
        host, _, p = text.partition(":")
        port = parse_port(p, what)
    else:
        host, port = text, default_port
    if ":" in host:
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError(f"{what}: {printable(repr(host))} is not an IPv6 address") from None
        if ip.scope_id is not None:
            raise InputError(f"{what}: {printable(repr(host))} names a zone (%...), which only this machine "
                             "understands; give the address without it")
        host = str(ip)  # one spelling per address
    elif not is_host_name(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise InputError(f"{what}: {printable(repr(host))} is not a host name (such as "
                             "turn.example.com) or an IP address") from None
    return host, port


@dataclass(frozen=True)
class Uri:
    """One parsed stun:/stuns:/turn:/turns: URI (RFC 7064, RFC 7065)."""

    scheme: str      # stun, stuns, turn, turns
    host: str
    port: int
    transport: str   # udp or tcp (tls for stuns/turns)


def parse_uri(text: str) -> Uri:
    m = re.fullmatch(r"(stuns?|turns?):(?!//)([^?]+)(?:\?transport=(udp|tcp))?", text.strip(), re.IGNORECASE)
    if not m:
        raise InputError(f"{printable(repr(text))}: expected stun:HOST[:PORT], turn:HOST[:PORT]?transport=udp|tcp "
                         "or turns:HOST[:PORT]")
    scheme = m[1].lower()
    if scheme.startswith("stun") and m[3]:
        raise InputError(f"{printable(repr(text))}: a {scheme}: URI takes no ?transport (RFC 7064); browsers "
                         f"refuse it: write {scheme}:HOST[:PORT]")
    secure = scheme.endswith("s")
    host, port = split_host_port(m[2], DEFAULT_TLS_PORT if secure else DEFAULT_STUN_PORT, text)
    transport = (m[3] or "").lower()
    if secure:
        if transport == "udp":
            raise InputError(f"{text!r}: {scheme} runs over TLS, transport=udp is not possible")
        transport = "tls"
    else:
        transport = transport or "udp"
    return Uri(scheme, host, port, transport)


def format_uri(uri: Uri, host: str | None = None) -> str:
    """`uri` rebuilt from its parts, naming `host` instead when given: the form the stack
    outputs use, never the text as it came."""
    query = "" if uri.scheme.startswith("stun") else f"?transport={'tcp' if uri.transport == 'tls' else uri.transport}"
    return f"{uri.scheme}:{endpoint_label(host or uri.host, uri.port)}{query}"


def canonical_uris(uris: Iterable[str], schemes: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Each URI parsed and rebuilt, refused unless its scheme is one of `schemes`."""
    out = []
    for text in uris:
        uri = parse_uri(text)
        if uri.scheme not in schemes:
            raise InputError(f"{where}: {printable(repr(text))} is a {uri.scheme}: URI, where "
                             f"{' or '.join(s + ':' for s in schemes)} URIs belong")
        out.append(format_uri(uri))
    return tuple(out)


# -- checks -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One thing `probe` tests: a STUN binding, a TLS handshake or a TURN allocation."""

    kind: str                     # one of CHECK_KINDS
    host: str
    port: int
    auth: tuple[str, str] | None = None  # TURN username and password
    family: int | None = None     # 4 or 6: this address family of a name that has both

    @property
    def endpoint(self) -> str:
        label = endpoint_label(self.host, self.port)
        return f"{label}/ipv{self.family}" if self.family else label

    @property
    def turn(self) -> bool:
        return self.kind.startswith("turn")


def _checks_for(target: str, tls_port: int) -> list[Check]:
    if re.match(r"(?i)(stuns?|turns?):", target):
        uri = parse_uri(target)
        if uri.scheme == "stun":
            return [Check("stun-udp", uri.host, uri.port), Check("stun-tcp", uri.host, uri.port)]
        if uri.scheme == "stuns":
            return [Check("tls", uri.host, uri.port)]
        if uri.scheme == "turns":
            return [Check("tls", uri.host, uri.port), Check("turn-tls", uri.host, uri.port)]
        return [Check(f"turn-{uri.transport}", uri.host, uri.port)]
    if "://" in target:
        raise InputError(f"{target!r}: expected host, host:port or a stun:/turn:/turns: URI")
    host, port = split_host_port(target, DEFAULT_STUN_PORT, target)
    return [Check("stun-udp", host, port), Check("stun-tcp", host, port)]


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_families(checks: Iterable[Check], families: dict[str, set[int]]) -> list[Check]:
    """Each check on a name that resolves to both IPv4 and IPv6 (`families`: host -> {4, 6})
    becomes one check per family: a dual-stack name is two ways in, and either can be broken."""
    out: list[Check] = []
    for check in checks:
        if families.get(check.host) == {4, 6} and not is_address(check.host):
            out += [replace(check, family=4), replace(check, family=6)]
        else:
            out.append(check)
    return out


def plan_checks(targets: Iterable[str], *, tls_port: int = DEFAULT_TLS_PORT,
                auth: tuple[str, str] | None = None,
                auth_by_uri: dict[str, tuple[str, str]] | None = None) -> list[Check]:
    """Every check for these targets, in order, without duplicates.

    A host that gets a STUN binding and no TLS check also gets a TLS check on `tls_port`;
    with credentials, a host without any TURN check gets a UDP allocation on its STUN
    port. `auth_by_uri` gives credentials per URI (from an iceServers block), `auth`
    for every TURN check.
    """
    planned: list[Check] = []
    for target in targets:
        uri_auth = (auth_by_uri or {}).get(target)
        for check in _checks_for(target, tls_port):
            if check.turn:
                check = replace(check, auth=uri_auth or auth)
            planned.append(check)
    hosts = list(dict.fromkeys(c.host for c in planned))
    for host in hosts:
        mine = [c for c in planned if c.host == host]
        stun = [c for c in mine if c.kind.startswith("stun")]
        if stun and not any(c.kind == "tls" for c in mine):
            planned.append(Check("tls", host, tls_port))
        if stun and auth and not any(c.turn for c in mine):
            planned.append(Check("turn-udp", host, stun[0].port, auth))
    order = {h: i for i, h in enumerate(hosts)}
    unique = list(dict.fromkeys(planned))
    return sorted(unique, key=lambda c: (order[c.host], CHECK_KINDS.index(c.kind), c.port))


# -- stdin: stack outputs or an iceServers block -----------------------------------------

@dataclass(frozen=True)
class Servers:
    """What stdin named: URIs, the TURN secret (stack outputs) or fixed credentials (iceServers)."""

    stun_uris: tuple[str, ...] = ()
    turn_uris: tuple[str, ...] = ()
    secret: str | None = None
    public_ips: tuple[str, ...] = ()
    auth_by_uri: tuple[tuple[str, tuple[str, str]], ...] = ()
    # Several regions: the global entry's URIs alone, and which region each host is in
    # ("global" for the entry in front of them).
    global_stun_uris: tuple[str, ...] = ()
    global_turn_uris: tuple[str, ...] = ()
    region_by_host: tuple[tuple[str, str], ...] = ()

    @property
    def uris(self) -> list[str]:
        return [*self.stun_uris, *self.turn_uris]

    def region_of(self, host: str, relayed: str | None = None) -> str:
        """The region `host` is in, "" when the outputs do not say; for the global entry, the
        region whose instance relayed (its relayed address is an instance's own public IP)."""
        regions = dict(self.region_by_host)
        found = regions.get(host, "")
        answered = regions.get(relayed_host(relayed), "") if relayed else ""
        return f"global: {answered}" if found == "global" and answered not in ("", "global") else found

    def targets(self) -> list[str]:
        """The URIs, plus the same URIs for every public IP they do not already name
        (behind a DNS name, each instance is probed directly too)."""
        out = self.uris
        parsed = [parse_uri(u) for u in out]
        named = {uri.host for uri in parsed}
        first_host = parsed[0].host if parsed else None
        for ip in self.public_ips:
            if ip not in named and first_host is not None:
                out += [format_uri(uri, host=ip) for uri in parsed if uri.host == first_host]
        return list(dict.fromkeys(out))


def _string_list(outputs: dict[str, Any], key: str) -> tuple[str, ...]:
    value = outputs.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"stack outputs on stdin: {key} must be a list of strings, got {json.dumps(value)[:60]}")
    return tuple(value)


def read_servers(text: str) -> Servers:
    """Stack outputs (`pulumi stack output --json --show-secrets`) or an `{"iceServers": [...]}` block."""
    if not text.strip():
        raise InputError(f"stdin is empty; {PIPE_HINT}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"stack outputs on stdin are not JSON (line {e.lineno} column {e.colno}: {e.msg}); "
                         f"{PIPE_HINT}") from None
    except RecursionError:
        raise InputError(f"stack outputs on stdin are nested too deeply to be stack outputs; {PIPE_HINT}") from None
    if not isinstance(doc, dict):
        raise InputError(f"stack outputs on stdin: expected a JSON object, got {type(doc).__name__}; {PIPE_HINT}")
    if "iceServers" in doc:
        return _ice_servers(doc["iceServers"])
    stun_uris, turn_uris = _string_list(doc, "stun_uris"), _string_list(doc, "turn_uris")
    if not stun_uris and not turn_uris:
        keys = ", ".join(sorted(doc)[:8]) or "none"
        raise InputError(f"stack outputs on stdin have no stun_uris or turn_uris (keys: {keys}); {PIPE_HINT}")
    secret = doc.get("turn_shared_secret")
    if secret == "[secret]":
        raise InputError("turn_shared_secret is hidden ([secret]); run `pulumi stack output --json --show-secrets`")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise InputError("stack outputs on stdin: turn_shared_secret must be a non-empty string")
    stun_uris = canonical_uris(stun_uris, ("stun", "stuns"), "stack outputs on stdin: stun_uris")
    turn_uris = canonical_uris(turn_uris, ("turn", "turns"), "stack outputs on stdin: turn_uris")
    # Static dual stack: each instance's IPv6 address is probed directly too.
    public_ips = tuple(_public_ip(ip) for ip in _string_list(doc, "public_ips") + _string_list(doc, "public_ipv6s"))
    global_stun = canonical_uris(_string_list(doc, "global_stun_uris"), ("stun", "stuns"),
                                 "stack outputs on stdin: global_stun_uris")
    global_turn = canonical_uris(_string_list(doc, "global_turn_uris"), ("turn", "turns"),
                                 "stack outputs on stdin: global_turn_uris")
    regions = _region_hosts(doc)
    # Several regions: every region's instances are probed directly too.
    public_ips += tuple(ip for ip, region in regions if _is_ip(ip) and ip not in public_ips)
    hosts = ((parse_uri(u).host, "global") for u in (*global_stun, *global_turn))
    return Servers(stun_uris, turn_uris, secret, tuple(dict.fromkeys(public_ips)), global_stun_uris=global_stun,
                   global_turn_uris=global_turn, region_by_host=tuple(dict((*regions, *hosts)).items()))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def relayed_host(address: str) -> str:
    """The host of a relayed address as probe reports it (`1.2.3.4:5`, `[2001:db8::1]:5`)."""
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


def _region_hosts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(host, region) for every host a region's outputs name: its URIs' hosts, its instances'
    addresses, its load balancer's name."""
    regions = doc.get("regions", {})
    if not isinstance(regions, dict) or not all(isinstance(v, dict) for v in regions.values()):
        raise InputError("stack outputs on stdin: regions must map each region to its outputs")
    out: list[tuple[str, str]] = []
    for region, outputs in regions.items():
        shown = printable(str(region))
        for key in ("stun_uris", "turn_uris"):
            where = f"stack outputs on stdin: regions.{shown}.{key}"
            schemes = ("stun", "stuns") if key == "stun_uris" else ("turn", "turns")
            out += [(parse_uri(u).host, shown) for u in canonical_uris(_string_list(outputs, key), schemes, where)]
        out += [(_public_ip(ip), shown) for ip in _string_list(outputs, "public_ips") + _string_list(outputs, "public_ipv6s")]
        if isinstance(outputs.get("load_balancer_dns_name"), str):
            out.append((outputs["load_balancer_dns_name"], shown))
    return out


def _public_ip(text: str) -> str:
    """An address of the stack outputs in its one spelling; a zone means it is not public."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is None or getattr(ip, "scope_id", None) is not None:
        raise InputError(f"stack outputs on stdin: public_ips holds {printable(repr(text))}, not an IP address "
                         "(without a %zone)") from None
    return str(ip)


def _ice_servers(entries: Any) -> Servers:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError("iceServers on stdin: expected a list of {\"urls\": ...} objects")
    stun: list[str] = []
    turn: list[str] = []
    auth: dict[str, tuple[str, str]] = {}
    for entry in entries:
        urls = entry.get("urls", [])
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InputError("iceServers on stdin: urls must be a string or a list of strings")
        for url in urls:
            uri = parse_uri(url)
            url = format_uri(uri)
            (turn if uri.scheme.startswith("turn") else stun).append(url)
            if uri.scheme.startswith("turn") and isinstance(entry.get("username"), str) \
                    and isinstance(entry.get("credential"), str):
                auth[url] = (entry["username"], entry["credential"])
    if not stun and not turn:
        raise InputError("iceServers on stdin: no URLs")
    return Servers(tuple(stun), tuple(turn), auth_by_uri=tuple(auth.items()))
