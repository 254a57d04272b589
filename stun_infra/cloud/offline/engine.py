"""Run the real program on Pulumi's mock engine: no AWS account, no Pulumi CLI.

`stun-infra plan` and the unit tests share this: the mocks answer the zone and
instance-type-offering lookups from AWS's own per-region data (`zones`), the AMI lookup
with a plausible Debian image, give each resource the computed outputs AWS would, record
every registration with its parent (`monitor`), and refuse any lookup they do not know
rather than answer with nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pulumi
from pulumi.runtime import reset_options, set_all_config, set_mocks

from stun_infra.cloud.offline.monitor import RecordingMonitor, Registration
from stun_infra.cloud.offline.stack_files import UNSEEN_SECRET, stand_in, unseen_keys
from stun_infra.cloud.offline.zones import offered_in, region_data
from stun_infra.common.project import PROJECT
from stun_infra.settings import split_config

OFFLINE_ACCOUNT = "123456789012"


# Resources whose physical name AWS derives from the logical one when none is given.
NAMED_TYPES = ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile", "aws:sns/topic:Topic",
               "aws:lambda/function:Function", "aws:cloudwatch/eventRule:EventRule")


class UnknownInvoke(RuntimeError):
    pass


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
        self.provider_regions: dict[str, str] = {}  # an explicit aws provider's id -> its region

    def region_of(self, provider: str | None) -> str:
        """The region a call or resource goes to: its explicit provider's, else the default's."""
        return self.provider_regions.get((provider or "").rsplit("::", 1)[-1], self.region)

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append((args.token, dict(args.args)))
        region = self.region_of(args.provider)
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # The snapshot holds only standard zones (no Local or Wavelength Zones), all
            # available and opt-in-not-required: what the program's filters ask for.
            zones = region_data(region).zones
            return {"names": [name for name, _ in zones], "zoneIds": [zone_id for _, zone_id in zones],
                    "id": region}, []
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            (instance_type,) = next(f["values"] for f in args.args["filters"] if f["name"] == "instance-type")
            zones = list(self.offered_zones[instance_type] if instance_type in self.offered_zones
                         else offered_in(region, instance_type))
            return {"id": region, "locations": zones, "locationTypes": ["availability-zone"] * len(zones),
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
        if typ == "pulumi:providers:aws":
            rid = f"provider-{_fake_id(typ, name)}"
            self.provider_regions[rid] = inputs.get("region") or self.region
            return rid, inputs
        region = self.region_of(args.provider)
        arn_service = typ.split(":")[1].split("/")[0]
        state: dict[str, Any] = {**inputs,
                                 "arn": f"arn:aws:{arn_service}:{region}:{OFFLINE_ACCOUNT}:{name}"}
        rid = self._network_outputs(typ, name, inputs, _fake_id(typ, name), state)
        return self._service_outputs(typ, name, inputs, rid, state, region), state

    def _network_outputs(self, typ: str, name: str, inputs: dict[str, Any], rid: str, state: dict[str, Any]) -> str:
        """EC2 and VPC resources: their ids' prefixes and addresses; returns the id."""
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
        elif short.startswith("Vpc") or typ.startswith("aws:ec2/vpc:"):
            rid = f"vpc-{rid}"
            if typ == "aws:ec2/vpc:Vpc" and inputs.get("assignGeneratedIpv6CidrBlock"):
                state.update(ipv6CidrBlock=f"2001:db8:{rid[4:6]}00::/56")
        elif typ == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{rid}"
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-{rid}"
        return rid

    def _service_outputs(self, typ: str, name: str, inputs: dict[str, Any], rid: str, state: dict[str, Any],
                         region: str) -> str:
        """The other services' names, ARNs and computed outputs; returns the id."""
        if typ == "aws:acm/certificate:Certificate":
            rid = f"arn:aws:acm:{region}:{OFFLINE_ACCOUNT}:certificate/{rid}"
            # One CNAME per name, the same for every certificate of the account (any region).
            state.update(arn=rid, domainValidationOptions=[{
                "domainName": domain, "resourceRecordName": f"_{_fake_id('v', domain)}.{domain}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{_fake_id('w', domain)}.acm-validations.aws."}
                for domain in [inputs["domainName"], *inputs.get("subjectAlternativeNames", [])]])
        elif typ == "aws:globalaccelerator/accelerator:Accelerator":
            rid = f"arn:aws:globalaccelerator::{OFFLINE_ACCOUNT}:accelerator/{rid}"
            state.update(arn=rid, dnsName=f"a{_fake_id(typ, name)}.awsglobalaccelerator.com",
                         hostedZoneId="Z2BJ6XQ5FK7U4H", ipSets=[{"ipFamily": "IPv4", "ipAddresses": [
                             _fake_ip(name + "-1", 75), _fake_ip(name + "-2", 99)]}])
        elif typ == "aws:globalaccelerator/listener:Listener":
            rid = f"{inputs['acceleratorArn']}/listener/{rid[:8]}"
        elif typ == "aws:route53/record:Record":
            state.update(fqdn=inputs["name"].rstrip("."))
        elif typ == "aws:lb/targetGroup:TargetGroup":
            state.update(arn=f"arn:aws:elasticloadbalancing:{region}:{OFFLINE_ACCOUNT}:targetgroup/"
                             f"{(inputs.get('name') or name)[:32]}/{rid[:16]}")
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state.update(dnsName=f"{name}-{rid[:8]}.elb.{region}.amazonaws.com", zoneId="Z1CMS0P5QUZ6D5")
        elif typ == "aws:s3/bucket:Bucket":  # S3 appends 26 characters to the prefix
            rid = inputs.get("bucket") or (inputs.get("bucketPrefix", "") + _fake_id(typ, name + "-suffix")
                                           + "0" * 26)[:len(inputs.get("bucketPrefix", "")) + 26]
            state.update(bucket=rid, arn=f"arn:aws:s3:::{rid}")
        elif typ == "aws:autoscaling/group:Group":
            rid = inputs.get("name") or f"{name}-{rid[:7]}"
            state.update(name=rid)
        elif typ in NAMED_TYPES:
            state.update(name=inputs.get("name") or f"{name}-{rid[:7]}")
            if typ == "aws:iam/role:Role":  # IAM's ARNs have no region
                state.update(arn=f"arn:aws:iam::{OFFLINE_ACCOUNT}:role/{state['name']}")
            elif typ == "aws:lambda/function:Function":
                state.update(arn=f"arn:aws:lambda:{region}:{OFFLINE_ACCOUNT}:function:{state['name']}")
            elif typ == "aws:cloudwatch/eventRule:EventRule":
                state.update(arn=f"arn:aws:events:{region}:{OFFLINE_ACCOUNT}:rule/{state['name']}")
        elif typ == "aws:ssm/parameter:Parameter":
            # A changed value is a new version, as in Parameter Store (one per distinct value here).
            value = str(inputs.get("value", inputs.get("insecureValue", "")))
            state.update(arn=f"arn:aws:ssm:{region}:{OFFLINE_ACCOUNT}:parameter{inputs['name']}",
                         version=1 + int(hashlib.sha256(value.encode()).hexdigest(), 16) % 997)
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            state.update(arn=f"arn:aws:logs:{region}:{OFFLINE_ACCOUNT}:log-group:{inputs['name']}")
        elif typ == "tls:index/privateKey:PrivateKey":
            state.update(privateKeyPem=stand_in(name), publicKeyOpenssh=f"ssh-rsa AAAAoffline{rid} {name}\n")
        elif typ == "tls:index/selfSignedCert:SelfSignedCert":
            state.update(certPem=f"-----BEGIN CERTIFICATE-----\noffline-{name}\n-----END CERTIFICATE-----\n")
        elif typ == "random:index/randomPassword:RandomPassword":
            state.update(result=f"{UNSEEN_SECRET}-{name}")
        return rid


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

    unseen = unseen_keys(split_config(config)[0])
    mocks = OfflineMocks(config.get("aws:region", "eu-west-3"), offered_zones, hosted_zones,
                         dns_name=config.get(f"{PROJECT}:dnsName", ""), record_sets=record_sets)
    return run_program(lambda: build_stack(read_settings(unreadable=unseen)), mocks, config=config, stack=stack,
                       secret_keys=secret_keys)


def run_program(build: Callable[[], Mapping[str, Any] | None], mocks: OfflineMocks, *,
                config: Mapping[str, str] = (), stack: str = "dev", secret_keys: set[str] = frozenset()) -> OfflineRun:
    """Run `build` (the whole stack, or one component alone) on the mock engine with this
    config; returns what it registered and the outputs it returned, and raises what it raises."""
    config = dict(config)
    monitor = RecordingMonitor(mocks, stack)
    reset_options(project=PROJECT, stack=stack, preview=False)
    set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    set_all_config(config, sorted(secret_keys))
    collected: dict[str, tuple[Any, bool]] = {}

    async def program() -> None:
        for key, value in (build() or {}).items():
            out = pulumi.Output.from_input(value)
            collected[key] = (await out.future(), await out.is_secret())

    try:
        with _config_environment(config, secret_keys):
            pulumi.runtime.test(program)()
    finally:
        set_all_config({}, [])
    return OfflineRun(stack=stack, config=config, registrations=monitor.registrations,
                      outputs={k: v for k, (v, _) in collected.items()},
                      secret_outputs={k for k, (_, s) in collected.items() if s}, calls=mocks.calls,
                      outputs_registered=monitor.outputs_registered)
