"""Cross-key rules: what involves more than one key, and AWS limits a value can pass while
every key is valid on its own. They run only once every key passed its own rules."""

from __future__ import annotations

from typing import Any

from stun_infra.common.certificates import MAX_COMMON_NAME, days_left, dns_names, first_certificate, name_matches
from stun_infra.common.project import PROJECT
from stun_infra.settings.keys import RESERVED_TAGS, parse_certificates, parse_private_key
from stun_infra.settings.regions import (GA_ENDPOINT_GROUPS, GA_INSTANCES_PER_GROUP, GA_LISTENERS, is_opt_in,
                                         parse_override)
from stun_infra.settings.schema import key_specs
from stun_infra.settings.tls import client_ports_of

MIN_RELAY_PORTS = 100
MAX_ACM_DOMAIN = MAX_COMMON_NAME  # ACM's DomainName, like RFC 5280's common name
TURN_SECRET_KEYS = ("turnSecret", "turnSecretPrevious")
# "Maximum number of tags per resource: 50"; stun-infra sets up to 5 itself (RESERVED_TAGS
# and a per-resource one such as the subnets' Tier).
# https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html#tag-conventions
MAX_TAGS_PER_RESOURCE = 50
MAX_USER_TAGS = MAX_TAGS_PER_RESOURCE - len(RESERVED_TAGS) - 1
# PEM values are stored as Intelligent-Tiering SSM parameters: over 4 KB they become
# advanced parameters, which hold at most 8 KB.
# https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html
MAX_PARAMETER_BYTES = 8192

WARM_POOL_KEYS = ("warmPool", "warmPoolMinSize", "warmPoolMaxPreparedCapacity", "warmPoolReuseOnScaleIn")
# Hibernation must be enabled when the instance is launched (the launch template's
# HibernationOptions), on an instance family and an AMI AWS lists as supporting it, with a
# root volume that holds the RAM; this program enables none of it.
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-prerequisites.html
HIBERNATION_REFUSED = ("which needs hibernation enabled at launch, an instance family and AMI on AWS's hibernation "
                       "list and a root volume that holds the RAM; this program launches without hibernation; use "
                       "\"Stopped\" (a warm start from Stopped is the measured one in the README)")

_MODE_ONLY = {"static": ("instanceCount",),
              "autoscale": ("minSize", "desiredCapacity", "maxSize", "scalingCpuTarget",
                            "scalingMetric", "scalingSessionsTarget",
                            "minHealthyPercentage", "healthCheckGracePeriod", *WARM_POOL_KEYS)}


def cross_checks(v: dict[str, Any], given: set[str], secret_keys: set[str], unreadable: set[str]
                 ) -> list[str]:
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
    out += _warm_pool_problems(v, given)
    out += _port_clashes(v)
    if bool(v["tlsCertificate"]) != bool(v["tlsPrivateKey"]):
        out.append(f"{p}:tlsCertificate: tlsCertificate and tlsPrivateKey must be set together "
                   "(or neither, for a self-signed certificate)")
    elif v["tlsCertificate"] and not {"tlsCertificate", "tlsPrivateKey"} & unreadable \
            and not _key_matches_certificate(v["tlsCertificate"], v["tlsPrivateKey"]):
        out.append(f"{p}:tlsPrivateKey: is not the key of the first certificate in {p}:tlsCertificate "
                   "(the server's own certificate comes first, then the chain)")
    if v["tlsPrivateKey"] and f"{p}:tlsPrivateKey" not in secret_keys:
        out.append(f"{p}:tlsPrivateKey: is stored in plain text; set it with "
                   f"`pulumi config set --secret {p}:tlsPrivateKey < key.pem`")
    out += _rotation_problems(v, secret_keys, unreadable)
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
    if v["tlsCertificate"] and "tlsCertificate" not in unreadable:
        out += _certificate_problems(v["tlsCertificate"], v["dnsName"])
    return out


def _warm_pool_problems(v: dict[str, Any], given: set[str]) -> list[str]:
    """What AWS refuses of a warm pool, and settings that would be silently without effect."""
    p = PROJECT
    if v["mode"] != "autoscale":
        return []  # _MODE_ONLY names every warm pool key set in static mode
    if v["warmPool"] == "off":
        return [f"{p}:{k}: is only used with a warm pool but {p}:warmPool is \"off\"; set {p}:warmPool "
                f"(\"Stopped\" or \"Running\") or remove it (pulumi config rm {p}:{k})"
                for k in WARM_POOL_KEYS[1:] if k in given and v[k] != key_specs()[k].default]
    out: list[str] = []
    if v["warmPool"] == "Hibernated":
        out.append(f"{p}:warmPool: got \"Hibernated\", {HIBERNATION_REFUSED}")
    prepared = v["warmPoolMaxPreparedCapacity"]
    if not v["warmPoolMinSize"] and (v["maxSize"] if prepared == -1 else prepared) <= v["minSize"]:
        key, got = ("warmPoolMaxPreparedCapacity", prepared) if prepared != -1 else ("maxSize", v["maxSize"])
        out.append(f"{p}:{key}: got {got}, not above {p}:minSize ({v['minSize']}) with {p}:warmPoolMinSize 0: "
                   "the warm pool would hold no instance even at the group's smallest (AWS keeps "
                   f"{p}:warmPoolMaxPreparedCapacity, -1 meaning {p}:maxSize, minus the group's size); raise it "
                   f"or set {p}:warmPoolMinSize")
    return out


def region_rules(v: dict[str, Any], home: str, unreadable: set[str] = frozenset()) -> list[str]:
    """The regions a stack deploys to, against aws:region (the home region) and each other."""
    p = PROJECT
    out: list[str] = []
    regions = v["regions"] or (home,)
    if v["tlsCertificate"] and "tlsCertificate" not in unreadable and v["dnsName"] \
            and (len(regions) > 1 or v["globalAccelerator"]):
        regional = tuple(f"{region}.{v['dnsName']}" for region in dict.fromkeys((home, *regions)))
        out += _regional_name_problems(v["tlsCertificate"], v["dnsName"], regional)
    if home not in regions:
        out.append(f"{p}:regions: does not list aws:region ({home}), the home region that keeps the stack's "
                   f"default provider and resource names; add it: {', '.join((home, *regions))}")
    if unconfirmed := [r for r in regions if r != home and is_opt_in(r) and r not in v["optInRegions"]]:
        r = unconfirmed[0]
        out.append(f"{p}:regions: lists {r}, an opt-in region (disabled in an account until enabled); enable it "
                   f"(`aws account enable-region --region-name {r}`), then add it to {p}:optInRegions")
    if unused := [r for r in v["optInRegions"] if r not in regions]:
        out.append(f"{p}:optInRegions: lists {unused[0]}, which {p}:regions does not list, so it would be "
                   "ignored; remove it or add it to regions")
    for region, key, _ in filter(None, map(parse_override, v["regionOverrides"])):
        if region not in regions:
            out.append(f"{p}:regionOverrides: sets {key} for {region}, which {p}:regions does not list "
                       f"({', '.join(regions)}), so it would be ignored")
    if v["globalAccelerator"]:
        most = GA_ENDPOINT_GROUPS // GA_LISTENERS
        if len(regions) > most:
            out.append(f"{p}:globalAccelerator: {len(regions)} regions need {len(regions) * GA_LISTENERS} "
                       f"endpoint groups ({GA_LISTENERS} listeners x regions); an accelerator holds at most "
                       f"{GA_ENDPOINT_GROUPS}: list at most {most} regions or use DNS entry ({p}:dnsName)")
        # Client IP preservation (STUN must see the client's own address) is not supported for an
        # NLB whose listeners end TLS, nor one that translates IPv4 clients for IPv6 targets (the
        # dualstack NLB's source NAT prefix): about-endpoints.sipp-caveats.html.
        if v["mode"] == "autoscale" and v["dnsZoneId"] and not v["tlsCertificate"]:
            out.append(f"{p}:globalAccelerator: autoscale mode with {p}:dnsZoneId ends TLS at the load balancer "
                       "(ACM's certificate), and Global Accelerator keeps client addresses only for a load balancer "
                       f"without TLS listeners; bring the certificate ({p}:tlsCertificate, {p}:tlsPrivateKey: "
                       "coturn ends TLS), use static mode, or leave globalAccelerator off (DNS entry)")
        if v["mode"] == "autoscale" and v["ipv6"]:
            out.append(f"{p}:globalAccelerator: autoscale mode with {p}:ipv6 makes a dualstack load balancer with "
                       "an IPv6 source NAT prefix, for which Global Accelerator does not keep client addresses; "
                       f"set {p}:ipv6 false, use static mode, or leave globalAccelerator off (DNS entry)")
        if v["mode"] == "static" and v["instanceCount"] > GA_INSTANCES_PER_GROUP:
            out.append(f"{p}:globalAccelerator: static mode makes each instance an endpoint, and an endpoint "
                       f"group holds at most {GA_INSTANCES_PER_GROUP} instances (a new account's quota); "
                       f"{p}:instanceCount is {v['instanceCount']}: use at most {GA_INSTANCES_PER_GROUP} or "
                       "autoscale mode (one load balancer per region)")
    return out


def _rotation_problems(v: dict[str, Any], secret_keys: set[str], unreadable: set[str]) -> list[str]:
    p = PROJECT
    out = [f"{p}:{k}: is stored in plain text; set it as a secret (`stun-infra secret rotate` does)"
           for k in TURN_SECRET_KEYS if v[k] and f"{p}:{k}" not in secret_keys]
    if v["turnSecretPrevious"] and not v["turnSecret"]:
        out.append(f"{p}:turnSecretPrevious: is set without {p}:turnSecret; a rotation sets both "
                   "(`stun-infra secret rotate`)")
    elif v["turnSecretPrevious"] and v["turnSecretPrevious"] == v["turnSecret"] and "turnSecret" not in unreadable:
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
    tls_ports = client_ports_of(v["tlsPorts"], trusted)
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


def quotas(v: dict[str, Any]) -> list[str]:
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


def _regional_name_problems(pem: str, dns_name: str, regional: tuple[str, ...]) -> list[str]:
    """With a global entry each region answers at its own name too: the user's certificate
    (already checked to parse and name dnsName) must name those as well."""
    names = dns_names(first_certificate(pem))
    if missing := [name for name in regional if not name_matches(name, names)]:
        return [f"{PROJECT}:tlsCertificate: names {', '.join(names)}, not {', '.join(missing)}: each region answers "
                f"at its own name under {PROJECT}:dnsName and browsers would refuse it there; supply a certificate "
                f"that also names those (or *.{dns_name})"]
    return []


def _key_matches_certificate(certificate: str, key: str) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    der = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return parse_certificates(certificate)[0].public_key().public_bytes(*der) == \
        parse_private_key(key).public_key().public_bytes(*der)

