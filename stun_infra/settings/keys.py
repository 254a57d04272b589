"""Per-key rules: each key's value on its own, a message naming what is allowed or None.
A key whose value cannot be read here (a secret the caller could not decrypt) is not
checked: `load_settings` leaves it out, and the real run checks it."""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any

from stun_infra.common.project import PROJECT
from stun_infra.common.text import control_character, printable
from stun_infra.settings.model import INSTANCE_TYPE as _INSTANCE_TYPE
from stun_infra.settings.regions import OVERRIDABLE_KEYS, is_opt_in, parse_override, region_list_problem

MAX_FLEET = 100
SSH_SHORTEST_PREFIX = {4: 8, 6: 32}  # broader ranges are the internet in a few pieces
RESERVED_TAGS = ("Name", "Project", "Stack", "ManagedBy")
# Resource names are built from the stack name; AWS load balancer and dashboard names take
# only letters, digits and hyphens.
# Every pattern here is used with fullmatch: `$` would also match before a trailing newline.
_STACK_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?")
MAX_TLS_PORTS = 4
SCALING_METRICS = ("cpu", "sessions")
# botocore's autoscaling model, WarmPoolState; "off" is this program's: no warm pool.
WARM_POOL_STATES = ("Stopped", "Running", "Hibernated")
# An instance drains at most as long as the NLB keeps forwarding a deregistered target's flows:
# its deregistration delay is 0-3600 s (ELB target group attribute
# deregistration_delay.timeout_seconds; at its end the flows are closed). The lifecycle hook's
# heartbeat timeout (30-7200 s, PutLifecycleHook) is this plus a margin, so it always fits.
# At least 60 s: one report of the live sessions and room for the lifecycle call.
DRAIN_SECONDS = (60, 3600)
MIN_BOOT_SECONDS = 180  # measured boot (apt installs + agent) is ~2 min; see README
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                      1096, 1827, 2192, 2557, 2922, 3288, 3653)
_DNS_NAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ZONE_ID = re.compile(r"Z[A-Z0-9]{1,31}")
# coturn's STUN_MAX_REALM_SIZE (ns_turn_defs.h, 4.6.1); a longer realm is not refused by
# coturn, so it is refused here rather than cut short there.
MAX_REALM = 127
# ACM's RequestCertificate DomainName (botocore's acm model, DomainNameString without its
# wildcard): at least two labels, the last at least two characters; and, as the field's
# documentation states, at most 64 characters (RFC 5280's common name).
ACM_DOMAIN_PATTERN = r"(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])"
_ACM_DOMAIN = re.compile(ACM_DOMAIN_PATTERN)
# Ports something else on an instance serves: a listening port there would open it to the
# world (and, in autoscale mode, the NLB would forward to it), around sshAllowedCidrs.
OTHER_SERVICES_PORTS = {22: "sshd", 68: "the DHCP client", 323: "chronyd"}
# Tags: SSM, CloudWatch Logs and ELB take only letters, digits, spaces and _.:/=+-@, keys
# 1-128 and values 0-256 characters; keys are compared without case.
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_Tag.html
# https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_Tag.html
TAG_PUNCTUATION = "_.:/=+-@"
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256
# Keys whose values are secret or PEM text: never echoed in a message.
UNSHOWN_KEYS = ("tlsCertificate", "tlsPrivateKey", "turnSecret", "turnSecretPrevious")
TURN_SECRET_LENGTH = (32, 256)  # 256: coturn's limit for one secret
TURN_SECRET_DISTINCT = 16
# The longest credential lifetime the README recommends, plus how late an app may switch to a
# new secret (it re-reads at least every 15 minutes, and takes a value only once it is 5 minutes
# old, when every instance accepts it): a retired secret signed nothing still valid.
MAX_RECOMMENDED_TTL = timedelta(hours=24)
APP_SECRET_REFRESH = timedelta(minutes=15)
APP_SECRET_SETTLE = timedelta(minutes=5)
TURN_SECRET_OVERLAP = MAX_RECOMMENDED_TTL + APP_SECRET_REFRESH + APP_SECRET_SETTLE


def _show(key: str, raw: Any, secret: bool = False) -> str:
    """A config value as a message quotes it: never a secret or a PEM body, never raw control characters."""
    if (secret or key in UNSHOWN_KEYS) and isinstance(raw, str):
        return f"a {len(raw)}-character value (not shown)"
    if isinstance(raw, str) and raw.startswith("["):  # a list arrives as JSON text
        try:
            return printable(json.dumps(json.loads(raw), ensure_ascii=False))
        except (ValueError, RecursionError):
            return printable(raw)
    return printable(json.dumps(raw, ensure_ascii=False))


def _one_line(value: Any) -> str | None:
    """Every string value (and list item) is one line of visible text: a value that ends in a
    newline or carries a control character would break out of its line in a script or file."""
    for text in value if isinstance(value, tuple) else (value,):
        if isinstance(text, str) and (c := control_character(text)):
            return (f"holds a control character or line break (U+{ord(c):04X}); "
                    "it must be one line of visible characters")
    return None


def _int_range(lo: int, hi: int):
    def check(v: int) -> str | None:
        return None if lo <= v <= hi else f"must be a whole number from {lo} to {hi}"
    return check


def _dns_name(v: str) -> str | None:
    return None if _DNS_NAME.fullmatch(v.lower()) else "must be a DNS name such as turn.example.com"


def cidr_form_problem(cidr: str) -> str | None:
    """Why `cidr` is not in the form AWS takes (ADDRESS/LENGTH), or None. Python's parser also
    takes a netmask or hostmask after the slash and an IPv6 `%zone`; AWS takes neither."""
    address, slash, length = cidr.partition("/")
    if "%" in address:
        return f"{printable(repr(cidr))} names a zone (%...), which only one machine understands; give the CIDR without it"
    if slash and not (length.isascii() and length.isdigit()):
        return (f"{printable(repr(cidr))}: give the prefix length as a number (AWS takes ADDRESS/LENGTH, such as "
                "10.42.0.0/16), not a netmask or hostmask")
    return None


def canonical_cidr(cidr: str) -> str:
    """A CIDR that passed the checks, in its one spelling (lower case, zeros compressed)."""
    return str(ipaddress.ip_network(cidr, strict=True))


def _cidr_list(v: tuple[str, ...]) -> str | None:
    for cidr in v:
        if message := cidr_form_problem(cidr):
            return message
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            return f"{cidr!r} is not a CIDR block such as 203.0.113.10/32 (host bits must be zero)"
        if "/" not in cidr:
            return f"{cidr!r} needs a prefix length, e.g. {cidr}/{net.max_prefixlen}"
        if net.prefixlen == 0:
            return (f"{cidr!r} opens SSH to the whole internet; list your own addresses "
                    "(e.g. 203.0.113.10/32) or leave it empty and use Session Manager")
        shortest = SSH_SHORTEST_PREFIX[net.version]
        if net.prefixlen < shortest:
            return (f"{cidr!r} opens SSH to {net.num_addresses:,} addresses; the broadest range allowed is "
                    f"/{shortest} for IPv{net.version}: list your own addresses or use Session Manager")
    networks = [canonical_cidr(cidr) for cidr in v]
    if twice := sorted({n for n in networks if networks.count(n) > 1}):
        return f"lists {twice[0]} twice (however it is spelt, it is one network)"
    return None


def _vpc_cidr(v: str) -> str | None:
    if message := cidr_form_problem(v):
        return message
    try:
        net = ipaddress.IPv4Network(v, strict=True)
    except ValueError:
        return "must be an IPv4 CIDR block with zero host bits, e.g. 10.42.0.0/16"
    if not 16 <= net.prefixlen <= 24:
        return "must have a prefix length from /16 to /24"
    if not any(net.subnet_of(ipaddress.IPv4Network(p)) for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")):
        return "must be a private (RFC 1918) range: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
    return None


def _instance_type(v: str) -> str | None:
    return None if _INSTANCE_TYPE.fullmatch(v) else "must be an EC2 instance type such as t4g.small or c7gn.medium"


def _realm(v: str) -> str | None:
    return None if re.fullmatch(rf"[A-Za-z0-9._-]{{1,{MAX_REALM}}}", v) else \
        f"must be 1-{MAX_REALM} characters of letters, digits, '.', '_' or '-'"


def _listening_port(v: int) -> str | None:
    if not 1 <= v <= 65535 or v in OTHER_SERVICES_PORTS:
        taken = ", ".join(f"{port} ({what})" for port, what in OTHER_SERVICES_PORTS.items())
        return (f"must be a port from 1 to 65535 that nothing else on the instance serves, not {taken}: "
                "a listening port is open to the whole internet")
    return None


def _email(v: str) -> str | None:
    return None if not v or _EMAIL.fullmatch(v) else "must be an email address or empty"


def _zone_id(v: str) -> str | None:
    return None if not v or _ZONE_ID.fullmatch(v) else "must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ, or empty"


def _tls_ports(v: tuple[int, ...]) -> str | None:
    if len(v) > MAX_TLS_PORTS:
        return f"lists {len(v)} ports, at most {MAX_TLS_PORTS} are allowed"
    for port in v:
        if message := _listening_port(port):
            return f"{port}: {message} (or be empty: 443 and 5349 with a trusted certificate, else 5349)"
    if len(set(v)) != len(v):
        return "lists a port twice"
    return None


def _optional_dns_name(v: str) -> str | None:
    if not v:
        return None
    if message := _dns_name(v):
        return message
    return None if _ACM_DOMAIN.fullmatch(v) else \
        "must be a name of at least two labels whose last has at least two characters, such as turn.example.com"


def _opt_in_regions(v: tuple[str, ...]) -> str | None:
    if message := region_list_problem(v):
        return message
    if enabled := [r for r in v if not is_opt_in(r)]:
        return f"lists {enabled[0]}, which is enabled in every account; list only opt-in regions"
    return None


def _region_overrides(v: tuple[str, ...]) -> str | None:
    seen: set[tuple[str, str]] = set()
    for entry in v:
        parsed = parse_override(entry)
        if parsed is None:
            return (f"{printable(json.dumps(entry))} is not REGION:KEY=VALUE (e.g. "
                    "ap-southeast-1:instanceType=c6i.large)")
        region, key, value = parsed
        if message := region_list_problem((region,)):
            return message
        if key not in OVERRIDABLE_KEYS:
            return f"{printable(json.dumps(entry))}: {printable(key)} cannot differ by region; keys: {', '.join(OVERRIDABLE_KEYS)}"
        if message := _CHECKS[key](value):
            return f"{printable(json.dumps(entry))}: {key} {message}"
        if (region, key) in seen:
            return f"sets {key} for {region} twice"
        seen.add((region, key))
    return None


def _retention(v: int) -> str | None:
    return None if v in LOG_RETENTION_DAYS else \
        "must be one of the values CloudWatch Logs accepts: " + ", ".join(map(str, LOG_RETENTION_DAYS))


def _tag_text(text: str) -> bool:
    """Letters, digits, spaces and _.:/=+-@: what SSM, CloudWatch Logs and ELB all take."""
    return all(unicodedata.category(c)[0] in "LN" or c == " " or c in TAG_PUNCTUATION for c in text)


def _tags(v: tuple[str, ...]) -> str | None:
    seen: dict[str, str] = {key.lower(): key for key in RESERVED_TAGS}
    for item in v:
        key, sep, value = item.partition("=")
        shown = printable(repr(item))
        if not sep or not key or len(key) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            return (f"{shown} must be Key=Value (key 1-{MAX_TAG_KEY} characters, "
                    f"value up to {MAX_TAG_VALUE})")
        if not _tag_text(key) or not _tag_text(value):
            return (f"{shown}: keys and values may hold only letters, digits, spaces and {TAG_PUNCTUATION} "
                    "(what SSM, CloudWatch Logs and load balancers accept)")
        if key.lower().startswith("aws:"):
            return f"{shown}: keys starting with aws: are reserved by AWS"
        if key.lower() in seen:
            if seen[key.lower()] in RESERVED_TAGS:
                return f"{shown}: {', '.join(RESERVED_TAGS)} are set by stun-infra on every resource"
            same = "given twice" if seen[key.lower()] == key else f"the same key as {seen[key.lower()]!r} (AWS ignores case)"
            return f"tag {printable(repr(key))} is {same}"
        seen[key.lower()] = key
    return None


def parse_certificates(v: str) -> list:
    from cryptography import x509
    return x509.load_pem_x509_certificates(v.encode())


def parse_private_key(v: str):
    from cryptography.hazmat.primitives import serialization
    return serialization.load_pem_private_key(v.encode(), password=None)


def _certificate_chain(v: str) -> str | None:
    if not v:
        return None
    if "PRIVATE KEY-----" in v:
        return ("holds a private key, which would be stored in plain text: keep only the certificate chain "
                f"here and the key in {PROJECT}:tlsPrivateKey (`pulumi config set --secret`)")
    try:
        parse_certificates(v)
    except ValueError:
        return "must be a PEM certificate chain (-----BEGIN CERTIFICATE----- blocks that parse), or empty"
    return None


def _tls_private_key(v: str) -> str | None:
    from cryptography.exceptions import UnsupportedAlgorithm
    if not v:
        return None
    try:
        parse_private_key(v)
    except TypeError:
        return "is encrypted; coturn reads the key without a passphrase: give it decrypted (as a secret)"
    except (ValueError, UnsupportedAlgorithm):
        return "must be a PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC) that parses, or empty"
    return None


def turn_secret_problem(v: str) -> str | None:
    """The strength rule for a TURN secret; the message never quotes it."""
    if not v:
        return None
    lo, hi = TURN_SECRET_LENGTH
    if not lo <= len(v) <= hi or any(not 33 <= ord(c) <= 126 for c in v):
        return f"must be {lo}-{hi} visible ASCII characters without spaces (`stun-infra secret rotate` makes one)"
    if len(set(v)) < TURN_SECRET_DISTINCT:
        return (f"has {len(set(v))} different characters, at least {TURN_SECRET_DISTINCT} are needed: "
                "use a random value (`stun-infra secret rotate` makes one)")
    return None


def rotation_started(v: str) -> datetime | None:
    """`turnSecretRotatedAt` as a UTC time, None when empty; ValueError when malformed."""
    if not v:
        return None
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v):
        raise ValueError(v)
    return datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _rotated_at(v: str) -> str | None:
    try:
        started = rotation_started(v)
    except ValueError:
        return "must be a UTC time such as 2026-12-05T00:00:00Z, or empty"
    if started and started > datetime.now(timezone.utc) + timedelta(minutes=5):
        return "is in the future"
    return None


_CHECKS = {
    "mode": lambda v: None if v in ("static", "autoscale") else 'must be "static" or "autoscale"',
    "instanceCount": _int_range(1, MAX_FLEET),
    "minSize": _int_range(1, MAX_FLEET),
    "desiredCapacity": _int_range(1, MAX_FLEET),
    "maxSize": _int_range(1, MAX_FLEET),
    "instanceType": _instance_type,
    "sshAllowedCidrs": _cidr_list,
    "vpcCidr": _vpc_cidr,
    "availabilityZones": _int_range(2, 6),
    "realm": _realm,
    "stunPort": _listening_port,
    "tlsPorts": _tls_ports,
    "relayMinPort": _int_range(1024, 65535),
    "relayMaxPort": _int_range(1024, 65535),
    "userQuota": _int_range(0, 1_000_000),
    "totalQuota": _int_range(0, 1_000_000),
    "maxBps": _int_range(0, 10_000_000_000),
    "tlsDomain": _dns_name,
    "tlsCertificate": _certificate_chain,
    "tlsPrivateKey": _tls_private_key,
    "turnSecret": turn_secret_problem,
    "turnSecretPrevious": turn_secret_problem,
    "turnSecretRotatedAt": _rotated_at,
    "rootVolumeSize": _int_range(8, 1024),
    "logRetentionDays": _retention,
    "alarmEmail": _email,
    "cpuHighPercent": _int_range(1, 100),
    "scalingCpuTarget": _int_range(10, 90),
    "scalingMetric": lambda v: None if v in SCALING_METRICS else 'must be "cpu" or "sessions"',
    "scalingSessionsTarget": _int_range(1, 1_000_000),
    "drainSeconds": _int_range(*DRAIN_SECONDS),
    "minHealthyPercentage": _int_range(0, 100),
    "healthCheckGracePeriod": _int_range(MIN_BOOT_SECONDS, 7200),
    "warmPool": lambda v: None if v in ("off", *WARM_POOL_STATES) else
    'must be "off", "Stopped" or "Running"',
    "warmPoolMinSize": _int_range(0, MAX_FLEET),
    "warmPoolMaxPreparedCapacity": lambda v: None if v == -1 or 1 <= v <= MAX_FLEET else
    f"must be -1 (the group's maxSize) or a whole number from 1 to {MAX_FLEET}",
    "dnsZoneId": _zone_id,
    "dnsName": _optional_dns_name,
    "tags": _tags,
    "regions": region_list_problem,
    "optInRegions": _opt_in_regions,
    "regionOverrides": _region_overrides,
}

# Values kept in one spelling, so that what AWS gets and what is compared is the same text.
_CANONICAL = {
    "sshAllowedCidrs": lambda v: tuple(canonical_cidr(c) for c in v),
    "vpcCidr": canonical_cidr,
}


def stack_name_problem(stack: str) -> str | None:
    if _STACK_NAME.fullmatch(stack):
        return None
    return (f"stack name: got {printable(repr(stack))}, must be 1-40 letters, digits and inner hyphens "
            "(resources are named after the stack and AWS load balancer names allow nothing else); "
            "rename it with `pulumi stack rename`")

