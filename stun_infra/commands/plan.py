"""`stun-infra plan`: what `pulumi up` would create, computed offline on Pulumi's mock engine."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

from stun_infra.commands.common import SELF_SIGNED_NOTE, add_stack_arguments, fail, overrides, stack_settings
from stun_infra.settings import ConfigError

COMPONENT_ORDER = ["region", "network", "access", "artifact", "tls", "secrets", "monitoring", "endpoint", "fleet"]
GLOBAL_ENTRY = ("stun-infra:endpoint:LatencyEntry", "stun-infra:endpoint:GlobalAccelerator")

# The inputs worth a glance, per resource type; everything else is in the code.
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock", "mapPublicIpOnLaunch"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("ipProtocol", "fromPort", "toPort", "cidrIpv4",
                                                                  "cidrIpv6"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("ipProtocol", "cidrIpv4"),
    "aws:ec2/instance:Instance": ("instanceType", "ami", "metadataOptions.httpTokens",
                                  "rootBlockDevice.volumeType", "rootBlockDevice.encrypted"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("instanceType", "imageId", "metadataOptions.httpTokens"),
    "aws:autoscaling/group:Group": ("minSize", "desiredCapacity", "maxSize", "healthCheckType",
                                    "instanceRefresh.preferences.minHealthyPercentage"),
    "aws:autoscaling/policy:Policy": ("policyType", "targetTrackingConfiguration.targetValue"),
    "aws:lb/loadBalancer:LoadBalancer": ("loadBalancerType", "enableCrossZoneLoadBalancing"),
    "aws:lb/targetGroup:TargetGroup": ("protocol", "port", "healthCheck.protocol"),
    "aws:lb/listener:Listener": ("protocol", "port", "sslPolicy"),
    "aws:acm/certificate:Certificate": ("domainName", "validationMethod", "options.export"),
    "aws:ssm/parameter:Parameter": ("name", "type"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": ("pattern",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "comparisonOperator", "threshold"),
    "aws:route53/record:Record": ("name", "type", "setIdentifier", "healthCheckId"),
    "aws:route53/healthCheck:HealthCheck": ("type", "fqdn", "ipAddress", "port"),
    "aws:globalaccelerator/listener:Listener": ("protocol",),
    "aws:globalaccelerator/endpointGroup:EndpointGroup": ("endpointGroupRegion",),
    "pulumi:providers:aws": ("region",),
    "tls:index/privateKey:PrivateKey": ("algorithm",),
    "tls:index/selfSignedCert:SelfSignedCert": ("validityPeriodHours",),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="show what `pulumi up` would create (offline, no AWS account)",
                       description=__doc__)
    add_stack_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def _dig(inputs: dict[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def summary(typ: str, inputs: dict[str, Any]) -> str:
    parts = []
    for path in KEY_INPUTS.get(typ, ()):
        value = _dig(inputs, path)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # the engine speaks JSON numbers
        if value not in (None, ""):
            parts.append(f"{'.'.join(path.split('.')[-2:])}={value}")
    return " ".join(parts)


def _one_line(value: Any) -> str:
    if not isinstance(value, str):
        return json.dumps(value)
    return value.splitlines()[0] + " ..." if "\n" in value.strip() else value


def regions_of(result) -> dict[str, str]:
    """Each component's region: its region group's, "global" for the entry in front of them,
    else the home region."""
    home = result.config.get("aws:region", "")
    by_urn = {r.urn: r for r in result.registrations}
    # A region group's region is its provider's (its name may be cut to fit AWS's limits).
    group_region = {r.parent: r.inputs.get("region", "") for r in result.registrations
                    if r.type == "pulumi:providers:aws"}

    def region(r) -> str:
        while r is not None:
            if r.type == "stun-infra:region:RegionGroup":
                return group_region.get(r.urn, "")
            if r.type in GLOBAL_ENTRY:
                return "global"
            r = by_urn.get(r.parent)
        return home

    return {r.urn: region(r) for r in result.registrations if not r.custom}


def run(args: argparse.Namespace) -> int:
    from stun_infra.cloud.offline import NoOfflineData, run_offline, stack_config

    try:
        config, secret_keys = stack_config(args.stack, overrides(args))
        result = run_offline(config, stack=args.stack, secret_keys=secret_keys)
    except (ConfigError, NoOfflineData) as e:
        return fail(str(e))
    outputs = {k: ("[secret]" if k in result.secret_outputs else v) for k, v in result.outputs.items()}
    region_of = regions_of(result)
    home = result.config.get("aws:region", "")
    seen = list(dict.fromkeys(region_of.values()))
    places = sorted(seen, key=lambda p: (p != home, p == "global", seen.index(p)))  # home first, global last
    components = {r.urn: r for r in sorted((r for r in result.registrations if not r.custom),
                                           key=lambda r: (places.index(region_of[r.urn]),
                                                          COMPONENT_ORDER.index(r.type.split(":")[1])))}
    by_component: dict[str, list] = defaultdict(list)
    for r in result.registrations:
        if r.custom:
            by_component[r.parent].append(r)
    if args.json:
        print(json.dumps({
            "stack": args.stack,
            "resources": [{"type": r.type, "name": r.name, "component": components[r.parent].type
                           if r.parent in components else None, "region": region_of.get(r.parent)}
                          for r in result.registrations if r.custom],
            "outputs": outputs}, indent=2))
        return 0
    print(f"stun-infra plan: stack {args.stack}, {outputs['mode']} mode, {', '.join(p for p in places if p != 'global')} "
          "(offline on Pulumi's mock engine: nothing is created; ids and addresses are stand-ins)\n")
    shown = None
    for urn, component in components.items():
        if len(places) > 1 and region_of[urn] != shown:
            shown = region_of[urn]
            count = sum(len(by_component.get(u, [])) for u, where in region_of.items() if where == shown)
            print(f"== {shown}{' (home)' if shown == places[0] else ''}: {count} resources ==\n")
        children = by_component.get(urn, [])
        print(f"{component.type}  {component.name}  ({len(children)} resources)")
        for r in children:
            print(f"  + {r.type:<58} {r.name:<34} {summary(r.type, r.inputs)}".rstrip())
        print()
    custom = [r for r in result.registrations if r.custom]
    print(f"Resources: {len(custom)} to create in {len(components)} components\n")
    print("Outputs:")
    width = max(map(len, outputs))
    for key, value in outputs.items():
        print(f"  {key:<{width}}  {_one_line(value)}")
    settings = stack_settings(args)
    if settings.turn and not settings.tls.trusted:
        print(f"\nNote: {SELF_SIGNED_NOTE}")
    return 0
