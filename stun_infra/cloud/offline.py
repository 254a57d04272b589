"""Run the real program on Pulumi's mock engine: no AWS account, no Pulumi CLI.

`stun-infra plan` and the unit tests share this: the mocks answer the zone and
instance-type-offering lookups from AWS's own per-region data (the snapshot moto ships,
vendored in stun_infra/data/zones.json.gz), the AMI lookup with a plausible Debian
image, give each resource the computed outputs AWS would, record every registration
with its parent, and refuse any lookup they do not know rather than answer with nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import pulumi
import yaml
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stun_infra.settings import (PROJECT, PROJECT_ROOT, UNDECRYPTED_SECRET, ConfigError, DuplicateKey, Settings,
                                 load_yaml, printable, split_config, stack_name_problem)

ZONES_FILE = Path(__file__).resolve().parents[1] / "data" / "zones.json.gz"
OFFLINE_ACCOUNT = "123456789012"
SECRET_PLACEHOLDER = "offline-placeholder-for-a-secret"
# A `secure:` value in a stack file cannot be decrypted offline; the only secret key
# the project takes is a PEM private key, so the stand-in has that shape (and settings
# leave its checks to the real run).
SECURE_VALUE_PLACEHOLDER = UNDECRYPTED_SECRET
# What a stack file may hold besides `config:` (Pulumi's stack settings file).
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


class UnknownInvoke(RuntimeError):
    pass


class NoOfflineData(RuntimeError):
    """The snapshot has nothing for this region: `plan` cannot answer what AWS would."""


@dataclass(frozen=True)
class RegionData:
    zones: tuple[tuple[str, str], ...]  # (name, zone id), as DescribeAvailabilityZones lists them
    offerings: dict[str, tuple[str, ...]] | None  # instance type -> zones offering it; None: not in the snapshot


@cache
def region_data(region: str) -> RegionData:
    """AWS's zones and instance type offerings of a region, from the vendored snapshot."""
    snapshot = json.loads(gzip.decompress(ZONES_FILE.read_bytes()))
    entry = snapshot["regions"].get(region)
    if entry is None:
        raise NoOfflineData(f"aws:region: {region} has no zone data in the offline snapshot "
                            f"({snapshot['source']}); `plan` cannot tell which zones it has")
    offerings = None
    if "offerings" in entry:
        offerings = {t: tuple(group["zones"]) for group in entry["offerings"] for t in group["types"]}
    return RegionData(zones=tuple((name, zone_id) for name, zone_id in entry["zones"]), offerings=offerings)


def offered_in(region: str, instance_type: str) -> tuple[str, ...]:
    """Zones of the region that offer the type, as DescribeInstanceTypeOfferings would list them."""
    data = region_data(region)
    if data.offerings is None:
        raise NoOfflineData(
            f"aws:region: the offline snapshot has no instance type offerings for {region}; `plan` cannot tell "
            f"which zones offer {instance_type}. Ask AWS: aws ec2 describe-instance-type-offerings "
            f"--location-type availability-zone --filters Name=instance-type,Values={instance_type} "
            f"--region {region}")
    return data.offerings.get(instance_type, ())


@dataclass(frozen=True)
class Registration:
    urn: str
    id: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]  # secrets unwrapped
    secret_inputs: frozenset[str]  # top-level input names whose value is secret
    state: dict[str, Any]
    ignore_changes: tuple[str, ...] = ()
    delete_timeout: str = ""  # customTimeouts.delete, as the engine gets it ("" = the provider's)
    dependencies: frozenset[str] = frozenset()  # URNs this resource waits for
    delete_before_replace: bool = False
    replace_on_changes: tuple[str, ...] = ()  # input names whose change replaces the resource


def _fake_id(typ: str, name: str) -> str:
    return hashlib.sha256(f"{typ}/{name}".encode()).hexdigest()[:17]


def _fake_ipv6(name: str, prefix: str = "2001:db8") -> str:
    """A documentation-range (2001:db8::/32) address standing in for an Amazon-provided one."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"{prefix}:{digest[0:2]}00:0:{digest[4:8]}:{digest[8:12]}:{digest[12:16]}:{digest[16:20]}"


def _fake_ip(name: str, first_octet: int) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"{first_octet}.{digest[0]}.{digest[1]}.{max(digest[2], 1)}"


class OfflineMocks(pulumi.runtime.Mocks):
    """Computed outputs of the resources this program creates, keyed by the engine's camelCase names."""

    def __init__(self, region: str, offered_zones: Mapping[str, Sequence[str]] | None = None,
                 hosted_zones: Mapping[str, tuple[str, bool]] | None = None, dns_name: str = "",
                 record_sets: Sequence[Mapping[str, Any]] = ()):
        self.region = region
        # Record sets already in the hosted zone (ListResourceRecordSets' shape); default: none.
        self.record_sets = [dict(r) for r in record_sets]
        # instance type -> zones, overriding the snapshot (tests of the zone choice itself)
        self.offered_zones = dict(offered_zones or {})
        # zone id -> (domain, private); a zone not listed stands in as the public parent
        # domain of dnsName (the usual layout: turn.example.com in example.com)
        self.hosted_zones = dict(hosted_zones or {})
        self.dns_name = dns_name
        self.calls: list[tuple[str, dict]] = []

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # The snapshot holds only standard zones (no Local or Wavelength Zones), all
            # available and opt-in-not-required: what the program's filters ask for.
            zones = region_data(self.region).zones
            return {"names": [name for name, _ in zones], "zoneIds": [zone_id for _, zone_id in zones],
                    "id": self.region}, []
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            (instance_type,) = next(f["values"] for f in args.args["filters"] if f["name"] == "instance-type")
            zones = list(self.offered_zones[instance_type] if instance_type in self.offered_zones
                         else offered_in(self.region, instance_type))
            return {"id": self.region, "locations": zones, "locationTypes": ["availability-zone"] * len(zones),
                    "instanceTypes": [instance_type] * len(zones)}, []
        if args.token == "aws:ec2/getAmi:getAmi":
            arch = next(f["values"][0] for f in args.args["filters"] if f["name"] == "architecture")
            debian_arch = "arm64" if arch == "arm64" else "amd64"
            return {"id": f"ami-0{debian_arch}0000000000", "name": f"debian-12-{debian_arch}-20261101-1900",
                    "architecture": arch, "rootDeviceName": "/dev/xvda"}, []
        if args.token == "aws:route53/getZone:getZone":
            zone_id = args.args["zoneId"]
            parent = self.dns_name.split(".", 1)[-1] if self.dns_name.count(".") >= 2 else self.dns_name
            domain, private = self.hosted_zones.get(zone_id, (parent, False))
            return {"id": zone_id, "zoneId": zone_id, "name": domain, "privateZone": private,
                    "nameServers": [f"ns-1.awsdns-00.{tld}" for tld in ("com", "net")]}, []
        if args.token == "aws:route53/getRecords:getRecords":
            pattern = re.compile(args.args.get("nameRegex") or "")
            return {"zoneId": args.args["zoneId"], "nameRegex": args.args.get("nameRegex"),
                    "resourceRecordSets": [r for r in self.record_sets if pattern.search(r["name"])]}, []
        raise UnknownInvoke(f"Mock not implemented: {args.token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        rid = _fake_id(typ, name)
        arn_service = typ.split(":")[1].split("/")[0]
        state: dict[str, Any] = {**inputs,
                                 "arn": f"arn:aws:{arn_service}:{self.region}:{OFFLINE_ACCOUNT}:{name}"}
        short = typ.split(":")[-1]
        if typ == "aws:ec2/eip:Eip":
            state.update(publicIp=_fake_ip(name, 203), allocationId=f"eipalloc-{rid}")
            rid = f"eipalloc-{rid}"
        elif typ == "aws:ec2/instance:Instance":
            rid = f"i-{rid}"
            state.update(privateIp=_fake_ip(name, 10), publicIp=_fake_ip(name + "-auto", 198))
            if inputs.get("ipv6AddressCount"):
                state.update(ipv6Addresses=[_fake_ipv6(name)])
        elif typ == "aws:ec2/keyPair:KeyPair":
            state.update(keyName=inputs.get("keyName") or f"{name}-{rid[:7]}")
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            rid = f"lt-{rid}"
            state.update(latestVersion=1)
        elif typ == "aws:acm/certificate:Certificate":
            rid = f"arn:aws:acm:{self.region}:{OFFLINE_ACCOUNT}:certificate/{rid}"
            domain = inputs["domainName"]
            state.update(arn=rid, domainValidationOptions=[{
                "domainName": domain, "resourceRecordName": f"_{_fake_id('v', domain)}.{domain}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{_fake_id('w', domain)}.acm-validations.aws."}])
        elif typ == "aws:route53/record:Record":
            state.update(fqdn=inputs["name"].rstrip("."))
        elif typ == "aws:lb/targetGroup:TargetGroup":
            state.update(arn=f"arn:aws:elasticloadbalancing:{self.region}:{OFFLINE_ACCOUNT}:targetgroup/"
                             f"{(inputs.get('name') or name)[:32]}/{rid[:16]}")
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state.update(dnsName=f"{name}-{rid[:8]}.elb.{self.region}.amazonaws.com", zoneId="Z1CMS0P5QUZ6D5")
        elif typ == "aws:s3/bucket:Bucket":  # S3 appends 26 characters to the prefix
            rid = inputs.get("bucket") or (inputs.get("bucketPrefix", "") + _fake_id(typ, name + "-suffix")
                                           + "0" * 26)[:len(inputs.get("bucketPrefix", "")) + 26]
            state.update(bucket=rid, arn=f"arn:aws:s3:::{rid}")
        elif typ == "aws:autoscaling/group:Group":
            rid = inputs.get("name") or f"{name}-{rid[:7]}"
            state.update(name=rid)
        elif typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile", "aws:sns/topic:Topic",
                     "aws:lambda/function:Function", "aws:cloudwatch/eventRule:EventRule"):
            state.update(name=inputs.get("name") or f"{name}-{rid[:7]}")
            if typ == "aws:iam/role:Role":  # IAM's ARNs have no region
                state.update(arn=f"arn:aws:iam::{OFFLINE_ACCOUNT}:role/{state['name']}")
            elif typ == "aws:lambda/function:Function":
                state.update(arn=f"arn:aws:lambda:{self.region}:{OFFLINE_ACCOUNT}:function:{state['name']}")
            elif typ == "aws:cloudwatch/eventRule:EventRule":
                state.update(arn=f"arn:aws:events:{self.region}:{OFFLINE_ACCOUNT}:rule/{state['name']}")
        elif typ == "aws:ssm/parameter:Parameter":
            # A changed value is a new version, as in Parameter Store (one per distinct value here).
            value = str(inputs.get("value", inputs.get("insecureValue", "")))
            state.update(arn=f"arn:aws:ssm:{self.region}:{OFFLINE_ACCOUNT}:parameter{inputs['name']}",
                         version=1 + int(hashlib.sha256(value.encode()).hexdigest(), 16) % 997)
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            state.update(arn=f"arn:aws:logs:{self.region}:{OFFLINE_ACCOUNT}:log-group:{inputs['name']}")
        elif typ == "tls:index/privateKey:PrivateKey":
            state.update(privateKeyPem=f"-----BEGIN PRIVATE KEY-----\n{SECRET_PLACEHOLDER}-{name}\n-----END PRIVATE KEY-----\n",
                         publicKeyOpenssh=f"ssh-rsa AAAAoffline{rid} {name}\n")
        elif typ == "tls:index/selfSignedCert:SelfSignedCert":
            state.update(certPem=f"-----BEGIN CERTIFICATE-----\noffline-{name}\n-----END CERTIFICATE-----\n")
        elif typ == "random:index/randomPassword:RandomPassword":
            state.update(result=f"{SECRET_PLACEHOLDER}-{name}")
        elif short.startswith("Vpc") or typ.startswith("aws:ec2/vpc:"):
            rid = f"vpc-{rid}"
            if typ == "aws:ec2/vpc:Vpc" and inputs.get("assignGeneratedIpv6CidrBlock"):
                state.update(ipv6CidrBlock=f"2001:db8:{rid[4:6]}00::/56")
        elif typ == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{rid}"
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-{rid}"
        return rid, state


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock engine, also keeping who registered what under which parent."""

    def __init__(self, mocks: OfflineMocks, stack: str):
        super().__init__(mocks)
        self.stack = stack
        self.registrations: list[Registration] = []
        self.outputs_registered: list[str] = []  # URNs whose register_outputs reached the engine

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The SDK's URN, for this run's stack and project whichever thread asks: older SDKs
        (3.231, the floor) ask from a worker thread that does not see the run's settings and
        would name the default stack and project."""
        urn = super().make_urn(parent, type_, name)
        return "::".join([f"urn:pulumi:{self.stack}", PROJECT, *urn.split("::")[2:]])

    def RegisterResourceOutputs(self, request):
        self.outputs_registered.append(request.urn)
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = rpc.deserialize_properties(request.object)
            self.registrations.append(Registration(
                urn=response.urn, id=response.id, type=request.type, name=request.name, parent=request.parent,
                custom=bool(request.custom), inputs=unwrap_secrets(raw),
                secret_inputs=frozenset(k for k, v in raw.items() if _is_secret(v)),
                state=unwrap_secrets(self.resources[response.urn].state),
                ignore_changes=tuple(request.ignoreChanges),
                delete_timeout=request.customTimeouts.delete,
                dependencies=frozenset(request.dependencies)
                | {u for deps in request.propertyDependencies.values() for u in deps.urns},
                delete_before_replace=bool(request.deleteBeforeReplace),
                replace_on_changes=tuple(request.replaceOnChanges)))
        return response


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def unwrap_secrets(value: Any) -> Any:
    """The engine's wire form of a secret is {sig: secret, value: v}; tests want v."""
    if _is_secret(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


@dataclass
class OfflineRun:
    stack: str
    config: dict[str, str]
    registrations: list[Registration]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    calls: list[tuple[str, dict]] = field(default_factory=list)
    outputs_registered: list[str] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == typ]

    def one(self, typ: str) -> Registration:
        found = self.of_type(typ)
        if len(found) != 1:
            raise AssertionError(f"expected one {typ}, found {len(found)}")
        return found[0]

    def named(self, typ: str, name: str) -> Registration:
        """The one resource of this type with this logical name."""
        (found,) = [r for r in self.of_type(typ) if r.name == name]
        return found


def stack_config(stack: str, overrides: Mapping[str, str] = (), project_root: Path = PROJECT_ROOT
                 ) -> tuple[dict[str, str], set[str]]:
    """Config as the engine would hand it over, as strings: PULUMI_CONFIG (what the running
    program reads), then Pulumi.<stack>.yaml, then overrides. Every command reads a stack here.

    Secure values cannot be decrypted offline: they get a placeholder and stay secret.
    """
    from stun_infra.cloud.config import environment_config

    if problem := stack_name_problem(stack):
        raise ConfigError([problem])
    env_config, secret_keys = environment_config()
    values = {key: engine_string(value) for key, value in env_config.items()}
    for key, value in stack_file_config(project_root / f"Pulumi.{stack}.yaml").items():
        key = str(key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = SECURE_VALUE_PLACEHOLDER
            secret_keys.add(key)
        else:
            values[key] = engine_string(value)
    for key, value in dict(overrides).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        values[full] = value
    return values, secret_keys


def stack_file_config(path: Path) -> dict[Any, Any]:
    """The `config:` map of a stack file ({} when there is no file); ConfigError, one line,
    for a file that is not YAML, not a map, or holds keys Pulumi's stack file does not."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path.name}: cannot be read ({getattr(e, 'strerror', None) or e})"]) from None
    try:
        doc = load_yaml(text)
    except DuplicateKey as e:
        raise ConfigError([f"{path.name}: line {e.problem_mark.line + 1}: {e.problem}; Pulumi refuses a stack "
                           "file that names a key twice: keep one"]) from None
    except (yaml.YAMLError, RecursionError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path.name}: is not valid YAML{where}; a stack file is a map with a `config:` map "
                           f"of `{PROJECT}:<key>: value`"]) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("config") or {}, dict):
        raise ConfigError([f"{path.name}: must be a map with a `config:` map of `{PROJECT}:<key>: value`"])
    stray = sorted(printable(str(k)) for k in doc if k not in STACK_FILE_KEYS)
    if stray:
        raise ConfigError([f"{path.name}: {', '.join(stray)}: not a stack file setting, so it would be ignored; "
                           f"config goes under `config:` as `{PROJECT}:<key>: value`"])
    return doc.get("config") or {}


def stack_settings(stack: str, overrides: Mapping[str, str] = ()) -> Settings:
    """Validated settings of a stack file plus overrides, as `pulumi up` would read them."""
    from stun_infra.settings import load_settings

    config, secret_keys = stack_config(stack, overrides)
    ours, dropped = split_config(config)
    return load_settings(ours, stack=stack, region=config.get("aws:region", ""), secret_keys=secret_keys,
                         dropped=dropped)


def engine_string(value: Any) -> str:
    """How the Pulumi engine passes a config value to the program."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


@contextmanager
def _config_environment(config: Mapping[str, str], secret_keys: set[str]) -> Iterator[None]:
    """PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS as the Pulumi CLI sets them for the program:
    the stack's config, whatever the caller's environment held (the CLI replaces them too), so
    that `plan`, `render` and `local` read one stack the same way."""
    from stun_infra.cloud.config import CONFIG_ENV, SECRET_KEYS_ENV

    saved = {name: os.environ.get(name) for name in (CONFIG_ENV, SECRET_KEYS_ENV)}
    os.environ[CONFIG_ENV] = json.dumps(dict(config))
    os.environ[SECRET_KEYS_ENV] = json.dumps(sorted(secret_keys))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_offline(config: Mapping[str, str], *, stack: str = "dev", secret_keys: set[str] = frozenset(),
                offered_zones: Mapping[str, Sequence[str]] | None = None,
                hosted_zones: Mapping[str, tuple[str, bool]] | None = None,
                record_sets: Sequence[Mapping[str, Any]] = ()) -> OfflineRun:
    """Run build_stack under mocks with this config; raises what the program raises."""
    from stun_infra.cloud.config import read_settings
    from stun_infra.cloud.stack import build_stack

    region = config.get("aws:region", "eu-west-3")
    mocks = OfflineMocks(region, offered_zones, hosted_zones, dns_name=config.get(f"{PROJECT}:dnsName", ""),
                         record_sets=record_sets)
    monitor = RecordingMonitor(mocks, stack)
    reset_options(project=PROJECT, stack=stack, preview=False)
    pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    runtime_config.set_all_config(dict(config), sorted(secret_keys))
    collected: dict[str, tuple[Any, bool]] = {}

    async def program() -> None:
        outputs = build_stack(read_settings())
        for key, value in outputs.items():
            out = pulumi.Output.from_input(value)
            collected[key] = (await out.future(), await out.is_secret())

    pulumi_mocks.SETTINGS.rpc_manager.clear()
    pulumi_mocks.SETTINGS.outputs.clear()
    try:
        with _config_environment(config, secret_keys):
            _sync_await(run_pulumi_func(lambda: _sync_await(program())))
    finally:
        runtime_config.set_all_config({}, [])
    return OfflineRun(stack=stack, config=dict(config), registrations=monitor.registrations,
                      outputs={k: v for k, (v, _) in collected.items()},
                      secret_outputs={k for k, (_, s) in collected.items() if s}, calls=mocks.calls,
                      outputs_registered=monitor.outputs_registered)
