"""Stack settings: read once from config, validated, frozen.

Pulumi.yaml's `config:` block is the single source of every key's type and
default; this module mirrors it as a typed object and refuses bad input before a
single resource exists. Every problem is reported at once, each naming the key,
the value it got and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from cryptography import x509

PROJECT = "stun-infra"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILE = PROJECT_ROOT / "Pulumi.yaml"

MAX_FLEET = 100
SSH_SHORTEST_PREFIX = {4: 8, 6: 32}  # broader ranges are the internet in a few pieces
RESERVED_TAGS = ("Name", "Project", "Stack", "ManagedBy")
# Resource names are built from the stack name; AWS load balancer and dashboard names take
# only letters, digits and hyphens.
# Every pattern here is used with fullmatch: `$` would also match before a trailing newline.
_STACK_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?")
MIN_RELAY_PORTS = 100
HTTPS_PORT, TURNS_PORT = 443, 5349
MAX_TLS_PORTS = 4
CERT_EXPIRY_WARNING_DAYS = 7
SCALING_METRICS = ("cpu", "sessions")
# An instance drains at most as long as the NLB keeps forwarding a deregistered target's flows:
# its deregistration delay is 0-3600 s (ELB target group attribute
# deregistration_delay.timeout_seconds; at its end the flows are closed). The lifecycle hook's
# heartbeat timeout (30-7200 s, PutLifecycleHook) is this plus a margin, so it always fits.
# At least 60 s: one report of the live sessions and room for the lifecycle call.
DRAIN_SECONDS = (60, 3600)
MIN_BOOT_SECONDS = 180  # measured boot (apt installs + agent) is ~2 min; see README
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                      1096, 1827, 2192, 2557, 2922, 3288, 3653)
_INSTANCE_TYPE = re.compile(r"(?P<family>[a-z]+)(?P<gen>\d+)(?P<attrs>[a-z-]*)\.(?P<size>[a-z0-9]+)")
_DNS_NAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ZONE_ID = re.compile(r"Z[A-Z0-9]{1,31}")
# coturn's STUN_MAX_REALM_SIZE (ns_turn_defs.h, 4.6.1); a longer realm is not refused by
# coturn, so it is refused here rather than cut short there.
MAX_REALM = 127
MAX_COMMON_NAME = 64
# ACM's RequestCertificate DomainName (botocore's acm model, DomainNameString without its
# wildcard): at least two labels, the last at least two characters; and, as the field's
# documentation states, at most 64 characters (RFC 5280's common name).
ACM_DOMAIN_PATTERN = r"(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])"
_ACM_DOMAIN = re.compile(ACM_DOMAIN_PATTERN)
MAX_ACM_DOMAIN = MAX_COMMON_NAME
# Ports something else on an instance serves: a listening port there would open it to the
# world (and, in autoscale mode, the NLB would forward to it), around sshAllowedCidrs.
OTHER_SERVICES_PORTS = {22: "sshd", 68: "the DHCP client", 323: "chronyd"}
# Tags: SSM, CloudWatch Logs and ELB take only letters, digits, spaces and _.:/=+-@, keys
# 1-128 and values 0-256 characters; keys are compared without case.
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_Tag.html
# https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_Tag.html
TAG_PUNCTUATION = "_.:/=+-@"
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256
# Keys the engine hands over that are not ours but expected: the providers' own config.
FOREIGN_NAMESPACES = ("aws", "pulumi", "tls", "random")
# Keys whose values are secret or PEM text: never echoed in a message.
UNSHOWN_KEYS = ("tlsCertificate", "tlsPrivateKey", "turnSecret", "turnSecretPrevious")
TURN_SECRET_KEYS = ("turnSecret", "turnSecretPrevious")
TURN_SECRET_LENGTH = (32, 256)  # 256: coturn's limit for one secret
TURN_SECRET_DISTINCT = 16
# The longest credential lifetime the README recommends, plus how late an app may switch to a
# new secret (it re-reads at least every 15 minutes, and takes a value only once it is 5 minutes
# old, when every instance accepts it): a retired secret signed nothing still valid.
MAX_RECOMMENDED_TTL = timedelta(hours=24)
APP_SECRET_REFRESH = timedelta(minutes=15)
APP_SECRET_SETTLE = timedelta(minutes=5)
TURN_SECRET_OVERLAP = MAX_RECOMMENDED_TTL + APP_SECRET_REFRESH + APP_SECRET_SETTLE
# A `secure:` value that cannot be decrypted here (the offline engine): its checks are
# left to the real run.
UNDECRYPTED_SECRET = ("-----BEGIN PRIVATE KEY-----\noffline-placeholder-for-a-secret\n"
                      "-----END PRIVATE KEY-----\n")
# "Maximum number of tags per resource: 50"; stun-infra sets up to 5 itself (RESERVED_TAGS
# and a per-resource one such as the subnets' Tier).
# https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html#tag-conventions
MAX_TAGS_PER_RESOURCE = 50
MAX_USER_TAGS = MAX_TAGS_PER_RESOURCE - len(RESERVED_TAGS) - 1
# PEM values are stored as Intelligent-Tiering SSM parameters: over 4 KB they become
# advanced parameters, which hold at most 8 KB.
# https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html
MAX_PARAMETER_BYTES = 8192
# Regions by partition, from botocore's endpoint data (scripts/extract_aws_data.py).
REGIONS_FILE = Path(__file__).resolve().parent / "data" / "regions.json"
# The program names Debian's AMI owner and console URLs of the commercial partition.
SUPPORTED_PARTITION = "aws"


class ConfigError(ValueError):
    """Bad stack config; `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: str
    default: Any
    description: str
    items: str = "string"  # element type of an array


class DuplicateKey(yaml.constructor.ConstructorError):
    """A map that names one key twice: Pulumi refuses such a file, YAML would keep the last."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKey(None, None, f"{printable(str(key))} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML as Pulumi reads its project and stack files: safe, and a key twice in a map is an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


@cache
def key_specs() -> dict[str, KeySpec]:
    """The `config:` block of Pulumi.yaml, by key."""
    doc = load_yaml(PROJECT_FILE.read_text())
    return {name: KeySpec(name, d["type"], d.get("default"), d.get("description", ""),
                          d.get("items", {}).get("type", "string"))
            for name, d in doc["config"].items()}


@cache
def known_regions() -> dict[str, str]:
    """Region -> partition, for every region botocore's endpoint data knows."""
    partitions = json.loads(REGIONS_FILE.read_text())["partitions"]
    return {region: partition for partition, regions in partitions.items() for region in regions}


def region_problem(region: str) -> str | None:
    """Why `aws:region` cannot be used, or None."""
    if not region:
        return "aws:region: not set; choose the region, e.g. `pulumi config set aws:region eu-west-3`"
    partition = known_regions().get(region)
    shown = json.dumps(region)  # quoted and escaped: a control character cannot reach the terminal raw
    if partition is None:
        near = difflib.get_close_matches(region, known_regions(), n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        return (f"aws:region: got {shown}, which is not an AWS region; {hint}regions: "
                + ", ".join(r for r, p in known_regions().items() if p == SUPPORTED_PARTITION))
    if partition != SUPPORTED_PARTITION:
        return (f"aws:region: got {shown}, a region of the {partition} partition; stun-infra deploys only to "
                f"{SUPPORTED_PARTITION} regions (it uses Debian's AMIs and console URLs there)")
    return None


def certificate_common_name(domain: str) -> str:
    """The subject CN of a certificate for `domain`: at most 64 characters (RFC 5280
    ub-common-name); the name itself goes in subjectAltName, which is what clients check."""
    return domain if len(domain) <= MAX_COMMON_NAME else PROJECT


def turns_ports_of(tls_ports: tuple[int, ...], trusted: bool) -> tuple[int, ...]:
    """The TLS ports clients use: `tlsPorts`, or by default 443 and 5349 with a trusted
    certificate (443 passes firewalls that allow only HTTPS) and 5349 alone without."""
    if tls_ports:
        return tls_ports
    return (HTTPS_PORT, TURNS_PORT) if trusted else (TURNS_PORT,)


def architecture_of(instance_type: str) -> str:
    """arm64 for Graviton families: a `g` among the attributes after the generation, or a1
    (the first Graviton, named before that convention)."""
    m = _INSTANCE_TYPE.fullmatch(instance_type)
    if not m:
        raise ValueError(instance_type)
    return "arm64" if "g" in m["attrs"] or (m["family"], m["gen"]) == ("a", "1") else "x86_64"


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    region: str
    mode: str
    instance_count: int
    min_size: int
    desired_capacity: int
    max_size: int
    instance_type: str
    ssh_allowed_cidrs: tuple[str, ...]
    turn: bool
    ipv6: bool
    vpc_cidr: str
    availability_zones: int
    realm: str
    stun_port: int
    tls_ports: tuple[int, ...]  # as configured; () = automatic, see `turns_ports`
    relay_min_port: int
    relay_max_port: int
    user_quota: int
    total_quota: int
    max_bps: int
    tls_domain: str
    tls_certificate: str
    tls_private_key: str = field(repr=False)
    turn_secret: str = field(repr=False)           # "" = the generated secret
    turn_secret_previous: str = field(repr=False)  # "" = no rotation under way
    turn_secret_rotated_at: str
    root_volume_size: int
    session_logging: bool
    log_retention_days: int
    alarm_email: str
    cpu_high_percent: int
    scaling_cpu_target: int
    scaling_metric: str
    scaling_sessions_target: int
    drain_seconds: int
    min_healthy_percentage: int
    health_check_grace_period: int
    dns_zone_id: str
    dns_name: str
    tags: tuple[tuple[str, str], ...]

    @property
    def prefix(self) -> str:
        """The one name every resource name derives from."""
        return f"{self.project}-{self.stack}"

    @property
    def architecture(self) -> str:
        return architecture_of(self.instance_type)

    @property
    def autoscale(self) -> bool:
        return self.mode == "autoscale"

    @property
    def user_tls(self) -> bool:
        return bool(self.tls_certificate)

    @property
    def acm_tls(self) -> bool:
        """The certificate comes from ACM, validated in the stack's Route 53 zone."""
        return bool(self.dns_zone_id) and not self.user_tls

    @property
    def trusted_tls(self) -> bool:
        """A certificate browsers can trust: ACM's, or the user's own (not the self-signed default)."""
        return self.acm_tls or self.user_tls

    @property
    def turns_ports(self) -> tuple[int, ...]:
        """The TLS ports clients use (see `turns_ports_of`)."""
        return turns_ports_of(self.tls_ports, self.trusted_tls)

    @property
    def tls_port(self) -> int:
        """The one TLS port coturn listens on (4.6.1 opens its alternative TLS port only with
        two listening addresses); the other `turns_ports` are redirected to it by nftables."""
        return self.turns_ports[0]

    @property
    def nlb_tls(self) -> bool:
        """Autoscale with ACM: the NLB ends TLS and coturn serves TURN over TCP only."""
        return self.autoscale and self.acm_tls

    @property
    def acm_export(self) -> bool:
        """Static with ACM: each instance exports the certificate for coturn."""
        return self.acm_tls and not self.autoscale

    @property
    def instance_tls_ports(self) -> tuple[int, ...]:
        """TLS ports clients reach on the instances themselves: every one in static mode; in
        autoscale mode the NLB maps its ports to coturn's one (passthrough) or ends TLS."""
        if self.nlb_tls:
            return ()
        return (self.tls_port,) if self.autoscale else self.turns_ports

    @property
    def tls_host(self) -> str:
        """The host name `turns:` URIs carry (the one the certificate names), or "" when
        only addresses are known (self-signed: browsers refuse it anyway)."""
        if self.dns_name:
            return self.dns_name
        return certificate_host(self.tls_certificate) if self.user_tls else ""

    @property
    def common_tags(self) -> dict[str, str]:
        return {"Project": self.project, "Stack": self.stack, "ManagedBy": "pulumi", **dict(self.tags)}

    @property
    def ssm_path(self) -> str:
        """Parameter Store folder for this stack's secrets."""
        return f"/{self.project}/{self.stack}"


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


# -- certificates: facts config checks and `probe` share --------------------------------

def first_certificate(pem: str | bytes) -> x509.Certificate:
    """The leaf (first) certificate of a PEM chain; ValueError naming what is wrong."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise ValueError("is not a readable PEM certificate (-----BEGIN CERTIFICATE----- ...)") from None


def days_left(cert: x509.Certificate, now: datetime | None = None) -> int:
    """Whole days until the certificate expires; negative once it has."""
    return (cert.not_valid_after_utc - (now or datetime.now(timezone.utc))).days


def dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName, else its common name."""
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                    .value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
                if isinstance(a.value, str)]


def name_matches(host: str, names: list[str]) -> bool:
    """RFC 6125 matching as browsers do it: exact, or a wildcard for exactly one left label."""
    host = host.lower().rstrip(".")
    for name in (n.lower().rstrip(".") for n in names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


# -- parsing: text from Pulumi config into the declared types --------------------------

def _parse(spec: KeySpec, raw: Any) -> Any:
    """Raw config (strings from the engine, natives from YAML defaults) into spec.type."""
    if spec.type == "string":
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        return raw
    if spec.type == "integer":
        if isinstance(raw, bool):
            raise ValueError("must be a whole number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
            return int(raw)
        raise ValueError("must be a whole number")
    if spec.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise ValueError("must be true or false")
    if spec.type == "array":
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw) if raw.strip() else []
            except (json.JSONDecodeError, RecursionError):
                raise ValueError("must be a list of strings (YAML list or JSON array)") from None
        if spec.items == "integer":
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      or isinstance(v, str) and v.strip().isdigit()
                                                      for v in value):
                raise ValueError("must be a list of whole numbers (YAML list or JSON array, e.g. [443, 5349])")
            return tuple(int(v) for v in value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of strings (YAML list or JSON array)")
        return tuple(value)
    raise AssertionError(f"Pulumi.yaml declares an unsupported type {spec.type!r}")


MAX_SHOWN = 200  # characters of a value quoted in a message


def printable(text: str) -> str:
    """`text` safe for one terminal line: control, format and line-separator characters
    as \\uXXXX escapes, cut to MAX_SHOWN characters."""
    out = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C" or c in "\u2028\u2029" else c
                  for c in text[:MAX_SHOWN])
    return out + ("..." if len(text) > MAX_SHOWN else "")


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


def _control_character(text: str) -> str | None:
    """The first character that breaks a line or is invisible (control, format, line separator)."""
    return next((c for c in text if unicodedata.category(c)[0] == "C" or c in "\u2028\u2029"), None)


def _one_line(value: Any) -> str | None:
    """Every string value (and list item) is one line of visible text: a value that ends in a
    newline or carries a control character would break out of its line in a script or file."""
    for text in value if isinstance(value, tuple) else (value,):
        if isinstance(text, str) and (c := _control_character(text)):
            return (f"holds a control character or line break (U+{ord(c):04X}); "
                    "it must be one line of visible characters")
    return None


# -- validation: each check returns a message or None ----------------------------------

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


def _certificates(v: str) -> list:
    from cryptography import x509
    return x509.load_pem_x509_certificates(v.encode())


def _private_key(v: str):
    from cryptography.hazmat.primitives import serialization
    return serialization.load_pem_private_key(v.encode(), password=None)


def _certificate_chain(v: str) -> str | None:
    if not v or v == UNDECRYPTED_SECRET:
        return None
    if "PRIVATE KEY-----" in v:
        return ("holds a private key, which would be stored in plain text: keep only the certificate chain "
                f"here and the key in {PROJECT}:tlsPrivateKey (`pulumi config set --secret`)")
    try:
        _certificates(v)
    except ValueError:
        return "must be a PEM certificate chain (-----BEGIN CERTIFICATE----- blocks that parse), or empty"
    return None


def _tls_private_key(v: str) -> str | None:
    from cryptography.exceptions import UnsupportedAlgorithm
    if not v or v == UNDECRYPTED_SECRET:
        return None
    try:
        _private_key(v)
    except TypeError:
        return "is encrypted; coturn reads the key without a passphrase: give it decrypted (as a secret)"
    except (ValueError, UnsupportedAlgorithm):
        return "must be a PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC) that parses, or empty"
    return None


def _key_matches_certificate(certificate: str, key: str) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    if UNDECRYPTED_SECRET in (certificate, key):
        return True  # checked where the secret can be read
    der = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return _certificates(certificate)[0].public_key().public_bytes(*der) == \
        _private_key(key).public_key().public_bytes(*der)


def turn_secret_problem(v: str) -> str | None:
    """The strength rule for a TURN secret; the message never quotes it."""
    if not v or v == UNDECRYPTED_SECRET:
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
    "dnsZoneId": _zone_id,
    "dnsName": _optional_dns_name,
    "tags": _tags,
}

# Values kept in one spelling, so that what AWS gets and what is compared is the same text.
_CANONICAL = {
    "sshAllowedCidrs": lambda v: tuple(canonical_cidr(c) for c in v),
    "vpcCidr": canonical_cidr,
}

_MODE_ONLY = {"static": ("instanceCount",),
              "autoscale": ("minSize", "desiredCapacity", "maxSize", "scalingCpuTarget",
                            "scalingMetric", "scalingSessionsTarget",
                            "minHealthyPercentage", "healthCheckGracePeriod")}


def _cross_checks(v: dict[str, Any], given: set[str], secret_keys: set[str]) -> list[str]:
    """Rules that involve more than one key."""
    p = PROJECT
    out: list[str] = []
    if v["mode"] == "autoscale":
        if v["minSize"] > v["maxSize"]:
            out.append(f"{p}:minSize: got {v['minSize']}, must not exceed {p}:maxSize ({v['maxSize']})")
        elif not v["minSize"] <= v["desiredCapacity"] <= v["maxSize"]:
            out.append(f"{p}:desiredCapacity: got {v['desiredCapacity']}, must be between "
                       f"{p}:minSize ({v['minSize']}) and {p}:maxSize ({v['maxSize']})")
    for mode, keys in _MODE_ONLY.items():
        if v["mode"] != mode:
            for k in keys:
                if k in given and v[k] != key_specs()[k].default:
                    out.append(f"{p}:{k}: is only used in {mode} mode but this stack has mode "
                               f"{v['mode']}; remove it (pulumi config rm {p}:{k})")
    if v["mode"] == "autoscale" and v["scalingMetric"] == "sessions":
        if not v["turn"]:
            out.append(f"{p}:scalingMetric: got \"sessions\", but {p}:turn is false: a STUN-only fleet has no "
                       f"TURN sessions to scale on; use \"cpu\"")
        elif v["totalQuota"] and v["scalingSessionsTarget"] > v["totalQuota"]:
            out.append(f"{p}:scalingSessionsTarget: got {v['scalingSessionsTarget']}, must not exceed "
                       f"{p}:totalQuota ({v['totalQuota']}): coturn refuses sessions beyond it, so the target "
                       "would never be reached")
    out += _port_clashes(v)
    if bool(v["tlsCertificate"]) != bool(v["tlsPrivateKey"]):
        out.append(f"{p}:tlsCertificate: tlsCertificate and tlsPrivateKey must be set together "
                   "(or neither, for a self-signed certificate)")
    elif v["tlsCertificate"] and not _key_matches_certificate(v["tlsCertificate"], v["tlsPrivateKey"]):
        out.append(f"{p}:tlsPrivateKey: is not the key of the first certificate in {p}:tlsCertificate "
                   "(the server's own certificate comes first, then the chain)")
    if v["tlsPrivateKey"] and f"{p}:tlsPrivateKey" not in secret_keys:
        out.append(f"{p}:tlsPrivateKey: is stored in plain text; set it with "
                   f"`pulumi config set --secret {p}:tlsPrivateKey < key.pem`")
    out += _rotation_problems(v, secret_keys)
    ipv6_ssh = [c for c in v["sshAllowedCidrs"] if ":" in c]
    if ipv6_ssh and not v["ipv6"]:
        out.append(f"{p}:sshAllowedCidrs: lists IPv6 CIDRs ({', '.join(ipv6_ssh)}) but {p}:ipv6 is false, so "
                   f"instances have no IPv6 address; set {p}:ipv6 true or list IPv4 CIDRs only")
    if bool(v["dnsZoneId"]) != bool(v["dnsName"]):
        out.append(f"{p}:dnsZoneId: dnsZoneId and dnsName must be set together (or neither)")
    elif v["dnsZoneId"] and not v["tlsCertificate"] and len(v["dnsName"]) > MAX_ACM_DOMAIN:
        out.append(f"{p}:dnsName: got {len(v['dnsName'])} characters, ACM's certificate for it takes at most "
                   f"{MAX_ACM_DOMAIN}; choose a shorter name or bring your own certificate "
                   f"({p}:tlsCertificate and {p}:tlsPrivateKey)")
    if v["tlsCertificate"] and v["tlsCertificate"] != UNDECRYPTED_SECRET:
        out += _certificate_problems(v["tlsCertificate"], v["dnsName"])
    return out


def _rotation_problems(v: dict[str, Any], secret_keys: set[str]) -> list[str]:
    p = PROJECT
    out = [f"{p}:{k}: is stored in plain text; set it as a secret (`stun-infra secret rotate` does)"
           for k in TURN_SECRET_KEYS if v[k] and f"{p}:{k}" not in secret_keys]
    if v["turnSecretPrevious"] and not v["turnSecret"]:
        out.append(f"{p}:turnSecretPrevious: is set without {p}:turnSecret; a rotation sets both "
                   "(`stun-infra secret rotate`)")
    elif v["turnSecretPrevious"] and v["turnSecretPrevious"] == v["turnSecret"] != UNDECRYPTED_SECRET:
        out.append(f"{p}:turnSecretPrevious: equals {p}:turnSecret; a rotation needs a new secret")
    if bool(v["turnSecretPrevious"]) != bool(v["turnSecretRotatedAt"]):
        out.append(f"{p}:turnSecretRotatedAt: turnSecretPrevious and turnSecretRotatedAt must be set together "
                   "(during a rotation) or neither")
    if (v["turnSecret"] or v["turnSecretPrevious"]) and not v["turn"]:
        out.append(f"{p}:turnSecret: a STUN-only stack ({p}:turn false) has no TURN secret; remove "
                   f"{p}:turnSecret and {p}:turnSecretPrevious")
    return out


def _port_clashes(v: dict[str, Any]) -> list[str]:
    """Every port the instances and the NLB listen on, however chosen (stunPort, tlsPorts or
    the automatic TLS ports, the relay range; health checks use the traffic port), must be
    distinct: two equal ones make duplicate security group rules and NLB listeners."""
    p = PROJECT
    out: list[str] = []
    trusted = bool(v["dnsZoneId"] or v["tlsCertificate"])
    tls_ports = turns_ports_of(v["tlsPorts"], trusted)
    tls_key = f"{p}:tlsPorts" if v["tlsPorts"] else f"an automatic TLS port of an empty {p}:tlsPorts"
    if v["stunPort"] in tls_ports:
        if v["tlsPorts"]:
            out.append(f"{p}:tlsPorts: got {list(v['tlsPorts'])}, must not include {p}:stunPort ({v['stunPort']})")
        else:
            certificate = "a trusted certificate" if trusted else "the self-signed certificate"
            out.append(f"{p}:stunPort: got {v['stunPort']}, which is {tls_key} (with {certificate}: "
                       f"{', '.join(map(str, tls_ports))}); choose another stunPort (3478 is STUN's own) "
                       f"or list {p}:tlsPorts without it")
    lo, hi = v["relayMinPort"], v["relayMaxPort"]
    if lo >= hi:
        out.append(f"{p}:relayMinPort: got {lo}, must be below {p}:relayMaxPort ({hi})")
    elif hi - lo + 1 < MIN_RELAY_PORTS:
        out.append(f"{p}:relayMaxPort: the relay range {lo}-{hi} holds {hi - lo + 1} ports, "
                   f"must hold at least {MIN_RELAY_PORTS}")
    listening = [(f"{p}:stunPort", v["stunPort"])] + [(tls_key, port) for port in tls_ports]
    for port_key, port in listening:
        if lo <= port <= hi:
            out.append(f"{p}:relayMinPort: the relay range {lo}-{hi} overlaps {port_key} "
                       f"({port}); move the range above it")
    return out


def stack_name_problem(stack: str) -> str | None:
    if _STACK_NAME.fullmatch(stack):
        return None
    return (f"stack name: got {printable(repr(stack))}, must be 1-40 letters, digits and inner hyphens "
            "(resources are named after the stack and AWS load balancer names allow nothing else); "
            "rename it with `pulumi stack rename`")


def _near_key(key: str) -> list[str]:
    specs = key_specs()
    return difflib.get_close_matches(key, specs, n=1, cutoff=0.6) or [k for k in specs if k.lower() == key.lower()]


def split_config(everything: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(this project's keys without the `stun-infra:` prefix, the other keys that no one reads)

    Pulumi hands over every key of the stack; a key without a namespace, or in a namespace
    neither this program nor its providers read, would be silently dropped.
    """
    def read(key: str) -> bool:
        namespace, colon, _ = key.partition(":")
        return bool(colon) and (namespace == PROJECT or namespace in FOREIGN_NAMESPACES)

    ours = {k.split(":", 1)[1]: v for k, v in everything.items() if k.startswith(PROJECT + ":")}
    return ours, sorted(k for k in everything if not read(k))


# Keys an earlier release read, with how to move a stack off them (README, Changelog).
RENAMED_KEYS = {
    "tlsPort": ("replaced by stun-infra:tlsPorts, a list; run `pulumi config rm stun-infra:tlsPort`, then, "
                "to keep your port, `pulumi config set --path 'stun-infra:tlsPorts[0]' PORT`"),
}


def _dropped_key_problem(key: str) -> str:
    name = key.split(":", 1)[-1]
    near = _near_key(name)
    hint = f"did you mean {PROJECT}:{near[0]}? " if near else ""
    where = "has no namespace" if ":" not in key else \
        f"is in namespace {printable(repr(key.split(':', 1)[0]))}, which nothing here reads"
    return (f"{printable(key)}: {where}, so it would be ignored; {hint}this program's keys are "
            f"{PROJECT}:<key>, its providers' {', '.join(n + ':' for n in FOREIGN_NAMESPACES)}")


def _quotas(v: dict[str, Any]) -> list[str]:
    """AWS limits a value can pass while every key is valid on its own; never echoes a secret."""
    p = PROJECT
    out: list[str] = []
    if len(v["tags"]) > MAX_USER_TAGS:
        out.append(f"{p}:tags: {len(v['tags'])} tags given, at most {MAX_USER_TAGS}: AWS allows "
                   f"{MAX_TAGS_PER_RESOURCE} per resource and stun-infra sets up to "
                   f"{MAX_TAGS_PER_RESOURCE - MAX_USER_TAGS} itself ({', '.join(RESERVED_TAGS)}, Tier)")
    for key in ("tlsCertificate", "tlsPrivateKey"):
        size = len(v[key].encode())
        if size > MAX_PARAMETER_BYTES:
            out.append(f"{p}:{key}: is {size} bytes, at most {MAX_PARAMETER_BYTES} fit in the SSM parameter "
                       "the instance reads it from (an advanced parameter); drop what the server does not send "
                       "(the root certificate, comments)")
    return out


def _certificate_problems(pem: str, dns_name: str) -> list[str]:
    """The user's certificate must parse, be valid now and name `dns_name` (when set)."""
    key = f"{PROJECT}:tlsCertificate"
    try:
        cert = first_certificate(pem)
    except ValueError as e:
        return [f"{key}: {e}"]
    problems = []
    days = days_left(cert)
    if days < 0:
        problems.append(f"{key}: expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                        "supply a current certificate (or remove it for a self-signed one)")
    names = dns_names(cert)
    if dns_name and not name_matches(dns_name, names):
        problems.append(f"{key}: names {', '.join(names) or 'no DNS name'}, not {PROJECT}:dnsName ({dns_name}); "
                        "browsers would refuse it: supply a certificate for that name")
    return problems


def certificate_host(pem: str) -> str:
    """The first DNS name (not a wildcard) of the first certificate in `pem`, or ""."""
    try:
        names = dns_names(first_certificate(pem))
    except ValueError:
        return ""
    return next((n for n in names if not n.startswith("*.")), "")


def load_settings(raw: Mapping[str, Any], *, stack: str, region: str,
                  secret_keys: set[str] = frozenset(), dropped: Sequence[str] = ()) -> Settings:
    """Settings from this project's config (keys without the `stun-infra:` prefix); `dropped`
    names the stack's other keys that no one reads (split_config).

    Raises ConfigError listing every problem.
    """
    specs = key_specs()
    problems: list[str] = []
    if message := stack_name_problem(stack):
        problems.append(message)
    problems += [_dropped_key_problem(key) for key in dropped]
    for key in sorted(set(raw) - set(specs)):
        if key in RENAMED_KEYS:
            problems.append(f"{PROJECT}:{key}: {RENAMED_KEYS[key]}")
            continue
        near = _near_key(key)
        hint = f"did you mean {PROJECT}:{near[0]}? " if near else ""
        problems.append(f"{PROJECT}:{printable(key)}: unknown key; {hint}known keys: {', '.join(specs)}")
    values: dict[str, Any] = {}
    for key, spec in specs.items():
        given = raw.get(key, spec.default)
        hidden = f"{PROJECT}:{key}" in secret_keys
        try:
            value = _parse(spec, given)
        except ValueError as e:
            problems.append(f"{PROJECT}:{key}: got {_show(key, given, hidden)}, {e}")
            continue
        message = (None if key in UNSHOWN_KEYS else _one_line(value)) or \
            (_CHECKS[key](value) if key in _CHECKS else None)
        if message:
            problems.append(f"{PROJECT}:{key}: got {_show(key, given, hidden)}, {message}")
        values[key] = _CANONICAL[key](value) if key in _CANONICAL and not message else value
    if message := region_problem(region):
        problems.append(message)
    if not problems:
        problems += _cross_checks(values, set(raw), set(secret_keys)) + _quotas(values)
    if problems:
        raise ConfigError(problems)
    fields = {_snake(k): v for k, v in values.items()}
    fields["tags"] = tuple(tuple(t.split("=", 1)) for t in values["tags"])
    return Settings(project=PROJECT, stack=stack, region=region, **fields)
