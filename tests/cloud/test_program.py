"""The whole program under mocks: what each mode creates, and how."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter

import pytest

from stun_infra.cloud.components.firewall import EC2_DESCRIPTION
from stun_infra.cloud.offline import UNSEEN_SECRET
from stun_infra.settings import ConfigError
from stun_infra.instance import package
from stun_infra.instance.userdata import unpacked
from tests.support.debs import configure_of, files_of, stored_package

from tests.conftest import inputs_of, program
from tests.support.pem import certificate_and_key

SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SG = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
GROUP = "aws:autoscaling/group:Group"


def counts(run) -> Counter:
    return Counter(r.type for r in run.registrations if r.custom)


def ingress(run) -> set[tuple]:
    return {(i["ipProtocol"], int(i["fromPort"]), int(i["toPort"]), i.get("cidrIpv4") or i.get("cidrIpv6"))
            for i in inputs_of(run, SG_RULE)}


# -- structure ------------------------------------------------------------------------

def test_every_urn_is_unique(any_run):
    urns = [r.urn for r in any_run.registrations]
    assert len(urns) == len(set(urns))


def test_every_resource_is_parented_to_one_of_our_components(any_run):
    components = {r.urn for r in any_run.registrations if not r.custom}
    orphans = [r.urn for r in any_run.registrations if r.custom and r.parent not in components]
    assert orphans == []


def test_components_sit_at_the_top_of_the_stack(any_run):
    def ancestors(r):
        return [t for t in r.urn.split("::")[2].split("$")[:-1] if t != "pulumi:pulumi:Stack"]
    assert [r.urn for r in any_run.registrations if not r.custom and ancestors(r)] == []


def test_every_component_registers_its_outputs_once(any_run):
    components = sorted(r.urn for r in any_run.registrations if not r.custom)
    assert sorted(u for u in any_run.outputs_registered if u in components) == components


def test_every_name_derives_from_the_stack_prefix(any_run):
    assert [r.name for r in any_run.registrations if not r.name.startswith("stun-infra-test")] == []


def test_every_taggable_aws_resource_is_tagged_with_project_and_stack(any_run):
    for r in any_run.registrations:
        if r.custom and "tags" in r.inputs and isinstance(r.inputs["tags"], dict):
            assert r.inputs["tags"]["Project"] == "stun-infra" and r.inputs["tags"]["Stack"] == "test", r.urn


def test_mocks_refuse_an_invoke_they_do_not_know():
    import pulumi

    from stun_infra.cloud.offline import OfflineMocks, UnknownInvoke
    with pytest.raises(UnknownInvoke, match="Mock not implemented: aws:index/getCallerIdentity"):
        OfflineMocks("eu-west-3").call(pulumi.runtime.MockCallArgs(
            "aws:index/getCallerIdentity:getCallerIdentity", {}, ""))


# -- exact resource counts ---------------------------------------------------------------

# What both modes create besides the fleet (two zones unless said otherwise).
EVERY_STACK = {
    "aws:ec2/vpc:Vpc": 1, "aws:ec2/internetGateway:InternetGateway": 1, "aws:ec2/routeTable:RouteTable": 1,
    "aws:ec2/subnet:Subnet": 2, "aws:ec2/routeTableAssociation:RouteTableAssociation": 2,
    "aws:ec2/securityGroup:SecurityGroup": 1, DEFAULT_SG: 1, SG_RULE: 8,  # four openings, each for IPv4 and IPv6
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": 2,
    "tls:index/privateKey:PrivateKey": 2, "aws:ec2/keyPair:KeyPair": 1,
    "tls:index/selfSignedCert:SelfSignedCert": 1, "random:index/randomPassword:RandomPassword": 1,
    "aws:ssm/parameter:Parameter": 3, "aws:cloudwatch/logGroup:LogGroup": 1,
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": 1,  # auth failures; the rest need sessionLogging
    "aws:iam/role:Role": 1, "aws:iam/rolePolicy:RolePolicy": 1, "aws:iam/instanceProfile:InstanceProfile": 1,
    "aws:sns/topic:Topic": 1, "aws:cloudwatch/dashboard:Dashboard": 1,
    # the instance package: its bucket, the bucket's guards, the object
    "aws:s3/bucket:Bucket": 1, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
    "aws:s3/bucketPolicy:BucketPolicy": 1, "aws:s3/bucketObjectv2:BucketObjectv2": 1,
}


def test_static_mode_creates_exactly_these_resources(static_run):
    assert counts(static_run) == {
        **EVERY_STACK,
        INSTANCE: 3, "aws:ec2/eip:Eip": 3, "aws:ec2/eipAssociation:EipAssociation": 3,
        "aws:ssm/document:Document": 1,  # the drain, run on one instance before it is replaced
        "aws:cloudwatch/metricAlarm:MetricAlarm": 17,  # per instance: status check, CPU, bindings stalled, not reporting; fleet: bindings stalled, sessions near quota, disk high, boot failed, certificate expiring
    }


def test_autoscale_mode_creates_exactly_these_resources(autoscale_run):
    assert counts(autoscale_run) == {
        **EVERY_STACK,
        "aws:ec2/subnet:Subnet": 3, "aws:ec2/routeTableAssociation:RouteTableAssociation": 3,
        "aws:lb/loadBalancer:LoadBalancer": 1, "aws:lb/targetGroup:TargetGroup": 4, "aws:lb/listener:Listener": 2,
        "aws:lb/listenerRule:ListenerRule": 2,  # dual stack: IPv4 clients to the instance groups
        # + the load balancer's group: in on 3 listener ports (udp+tcp 3478, tcp 5349) and path
        # MTU discovery's ICMP, out on 3 target ports, each for IPv4 and IPv6
        "aws:ec2/securityGroup:SecurityGroup": 2, SG_RULE: 8 + 8,
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": 2 + 6,
        # + the stale IPv6 target reconciler: its function, log group, role and policy, and
        # two triggers (terminations, schedule), each a rule, a target and a permission
        "aws:lambda/function:Function": 1, "aws:cloudwatch/logGroup:LogGroup": 2, "aws:iam/role:Role": 2,
        "aws:cloudwatch/eventRule:EventRule": 2, "aws:cloudwatch/eventTarget:EventTarget": 2,
        "aws:lambda/permission:Permission": 2,
        LAUNCH_TEMPLATE: 1, GROUP: 1, "aws:autoscaling/policy:Policy": 1,
        "aws:autoscaling/lifecycleHook:LifecycleHook": 2,  # the drain on scale-in and refresh; the launch
        "aws:iam/rolePolicy:RolePolicy": 3,  # + completing the group's lifecycle action, + the reconciler's
        "aws:cloudwatch/metricAlarm:MetricAlarm": 8,  # in service below minimum, CPU, bindings stalled, sessions near quota, not reporting, disk high, boot failed, certificate expiring
    }


def test_stun_only_mode_has_no_turn_secret(stun_only_run):
    c = counts(stun_only_run)
    assert "random:index/randomPassword:RandomPassword" not in c
    assert c["aws:ssm/parameter:Parameter"] == 2


# -- network --------------------------------------------------------------------------

def test_subnets_are_public_one_per_zone_inside_the_vpc(autoscale_run):
    subnets = inputs_of(autoscale_run, "aws:ec2/subnet:Subnet")
    assert sorted(s["availabilityZone"] for s in subnets) == ["eu-west-3a", "eu-west-3b", "eu-west-3c"]
    assert sorted(s["cidrBlock"] for s in subnets) == ["10.42.0.0/19", "10.42.32.0/19", "10.42.64.0/19"]
    assert all(s["mapPublicIpOnLaunch"] for s in subnets)


def test_the_public_route_goes_to_the_internet_gateway(static_run):
    (table,) = inputs_of(static_run, "aws:ec2/routeTable:RouteTable")
    assert [r.get("cidrBlock") or r.get("ipv6CidrBlock") for r in table["routes"]] == ["0.0.0.0/0", "::/0"]
    assert all(r["gatewayId"] for r in table["routes"])


# -- firewall -------------------------------------------------------------------------

def test_firewall_opens_stun_tls_and_exactly_the_relay_range(static_run):
    assert ingress(static_run) == {(p, lo, hi, anywhere) for anywhere in ("0.0.0.0/0", "::/0") for p, lo, hi in (
        ("udp", 3478, 3478), ("tcp", 3478, 3478), ("tcp", 5349, 5349), ("udp", 49152, 65535))}


@pytest.mark.parametrize("config", [
    {"stunPort": 443, "tlsPorts": [8443], "sshAllowedCidrs": ["203.0.113.7/32"]},
    {"mode": "autoscale", "stunPort": 3479, "relayMinPort": 20000, "relayMaxPort": 20999},
    {"turn": False, "stunPort": 1024, "sshAllowedCidrs": ["2001:db8::/64"]},
])
def test_only_coturns_own_ports_are_open_to_the_world(config):
    """Whatever the ports, the world reaches coturn's STUN, TLS and relay ports and nothing else
    (but path MTU discovery's ICMP, which has no port: its type and code stand in the rule's)."""
    from stun_infra.cloud.offline import engine_string
    from stun_infra.settings import load_settings
    run = program(**config)
    s = load_settings({k: engine_string(v) for k, v in config.items()}, stack="test", region="eu-west-3")
    coturn = {s.stun_port, *s.tls.ports} | (set(range(s.relay_min_port, s.relay_max_port + 1)) if s.turn else set())
    world = [r for r in ingress(run) if r[3] in ("0.0.0.0/0", "::/0") and r[0] in ("tcp", "udp")]
    assert world and all(set(range(lo, hi + 1)) <= coturn for _, lo, hi, _ in world)
    assert {r[:3] for r in ingress(run) if r[3] in ("0.0.0.0/0", "::/0") and r[0] not in ("tcp", "udp")} <= {
        ("icmp", 3, 4), ("icmpv6", 2, 0)}
    assert all(r[1] != 22 for r in world)


def test_relay_range_in_the_firewall_equals_coturns_min_and_max_port():
    from stun_infra.instance.coturn import INSTANCE_PATHS, turnserver_conf
    from stun_infra.settings import load_settings
    run = program(relayMinPort=40000, relayMaxPort=40999)
    (relay,) = [r for r in ingress(run) if r[0] == "udp" and r[1] != 3478 and r[3] == "0.0.0.0/0"]
    conf = turnserver_conf(load_settings({"relayMinPort": "40000", "relayMaxPort": "40999"}, stack="test",
                                         region="eu-west-3"),
                           public_ip="203.0.113.1", private_ip="10.0.0.1", turn_secret="x", paths=INSTANCE_PATHS)
    lines = set(conf.splitlines())
    assert relay[1:3] == (40000, 40999) and {"min-port=40000", "max-port=40999"} <= lines


def test_no_port_22_by_default(any_run):
    assert [r for r in ingress(any_run) if r[1] <= 22 <= r[2]] == []


def test_ssh_is_open_only_to_the_listed_cidrs():
    run = program(sshAllowedCidrs=["203.0.113.7/32", "2001:db8::/64"])
    assert {r for r in ingress(run) if r[1] == 22} == {("tcp", 22, 22, "203.0.113.7/32"),
                                                      ("tcp", 22, 22, "2001:db8::/64")}


def test_stun_only_opens_no_relay_ports(stun_only_run):
    assert ingress(stun_only_run) == {(p, lo, hi, anywhere) for anywhere in ("0.0.0.0/0", "::/0") for p, lo, hi in (
        ("udp", 3478, 3478), ("tcp", 3478, 3478), ("tcp", 5349, 5349))}


def test_every_rule_has_a_description(any_run):
    rules = inputs_of(any_run, SG_RULE) + inputs_of(any_run, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert all(r.get("description") for r in rules)


def test_every_security_group_description_uses_only_characters_ec2_accepts(any_run):
    """EC2 refuses anything outside a-zA-Z0-9, space and ._-:/()#,@[]+=&;{}!$* (an apostrophe fails)."""
    ssh = program(sshAllowedCidrs=["203.0.113.7/32", "2001:db8::/64"])
    described = [r for run in (any_run, ssh) for typ in (SG_RULE, SG_EGRESS, SG) for r in inputs_of(run, typ)]
    assert described and all(EC2_DESCRIPTION.fullmatch(r["description"]) for r in described), \
        [r["description"] for r in described if not EC2_DESCRIPTION.fullmatch(r["description"])]


def test_ec2_description_check_refuses_an_apostrophe():
    assert not EC2_DESCRIPTION.fullmatch("the instance's own public IP")
    assert EC2_DESCRIPTION.fullmatch("SSH from 2001:db8::/64 (stun-infra:sshAllowedCidrs)")


def test_the_vpcs_default_security_group_allows_nothing(any_run):
    """AWS Foundational Security Best Practices EC2.2: managed with no rule at all."""
    (default,) = any_run.of_type(DEFAULT_SG)
    (vpc,) = any_run.of_type("aws:ec2/vpc:Vpc")
    assert default.inputs["vpcId"] == vpc.id
    assert (default.inputs["ingress"], default.inputs["egress"]) == ([], [])
    assert default.parent == next(r.urn for r in any_run.registrations if r.type == "stun-infra:network:Network")


# -- static fleet ---------------------------------------------------------------------

def test_static_instances_are_spread_round_robin_over_the_zones(static_run):
    subnet_ids = {r.name: r for r in static_run.of_type("aws:ec2/subnet:Subnet")}
    assert len(subnet_ids) == 2
    used = [i.inputs["subnetId"] for i in sorted(static_run.of_type(INSTANCE), key=lambda r: r.name)]
    assert used[0] == used[2] != used[1]


def test_each_static_instance_gets_its_own_elastic_ip(static_run):
    associations = inputs_of(static_run, "aws:ec2/eipAssociation:EipAssociation")
    instance_ids = {r.id for r in static_run.of_type(INSTANCE)} | {a["instanceId"] for a in associations}
    assert len({a["allocationId"] for a in associations}) == 3 and len({a["instanceId"] for a in associations}) == 3
    assert len(instance_ids) == 3


def test_static_instances_are_never_replaced_all_at_once_by_a_new_ami_or_boot_script(static_run):
    for r in static_run.of_type(INSTANCE):
        assert set(r.ignore_changes) == {"ami", "userDataBase64"} and not r.inputs.get("userDataReplaceOnChange")


def test_the_package_digest_output_changes_with_what_the_instance_does():
    assert program(realm="a.example").outputs["boot_script_sha256"] != \
        program(realm="b.example").outputs["boot_script_sha256"]


def test_static_instances_wait_for_the_internet_gateway(static_run):
    (igw,) = static_run.of_type("aws:ec2/internetGateway:InternetGateway")
    assert all(igw.urn in r.dependencies for r in static_run.of_type(INSTANCE))


def test_static_instances_require_imdsv2_hop_limit_one(static_run):
    for i in inputs_of(static_run, INSTANCE):
        assert i["metadataOptions"]["httpTokens"] == "required"
        assert i["metadataOptions"]["httpPutResponseHopLimit"] == 1


def test_static_instances_have_encrypted_gp3_roots_and_detailed_monitoring(static_run):
    for i in inputs_of(static_run, INSTANCE):
        assert i["rootBlockDevice"]["encrypted"] is True and i["rootBlockDevice"]["volumeType"] == "gp3"
        assert i["monitoring"] is True


def test_static_user_data_waits_for_its_own_elastic_ip(static_run):
    ips = {r.state["allocationId"]: r.state["publicIp"] for r in static_run.of_type("aws:ec2/eip:Eip")}
    by_instance = {a["instanceId"]: ips[a["allocationId"]]
                   for a in inputs_of(static_run, "aws:ec2/eipAssociation:EipAssociation")}
    for r in static_run.of_type(INSTANCE):
        assert unpacked(r.inputs["userDataBase64"]).endswith(
            f'S.call(["{package.CONFIGURE_PATH}","{by_instance[r.id]}"]))\n')


def test_zones_are_only_those_offering_the_instance_type():
    run = program(instanceType="c7gn.medium", offered_zones={"c7gn.medium": ["eu-west-3b", "eu-west-3c"]})
    assert sorted(s["availabilityZone"] for s in inputs_of(run, "aws:ec2/subnet:Subnet")) == [
        "eu-west-3b", "eu-west-3c"]


def test_zones_are_chosen_by_name_and_offering_never_by_their_passing_state(static_run):
    (args,) = [a for token, a in static_run.calls if token == "aws:index/getAvailabilityZones:getAvailabilityZones"]
    assert "state" not in args  # an impaired zone must not move subnets on the next run
    assert args["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]


def test_too_few_zones_offering_the_instance_type_is_refused_before_any_resource():
    with pytest.raises(ConfigError) as caught:
        program(instanceType="c7gn.medium", offered_zones={"c7gn.medium": ["eu-west-3c"]})
    assert caught.value.problems == [
        "stun-infra:instanceType: got c7gn.medium, which region eu-west-3 offers in 1 zones "
        "(eu-west-3c) but stun-infra:availabilityZones asks for 2; choose an instance type offered in enough zones"]


def test_graviton_types_get_an_arm64_debian_ami():
    run = program(instanceType="c7g.large")
    (token, args) = next(c for c in run.calls if c[0] == "aws:ec2/getAmi:getAmi")
    filters = {f["name"]: f["values"] for f in args["filters"]}
    assert filters["architecture"] == ["arm64"] and filters["name"] == ["debian-12-arm64-*"]
    assert args["owners"] == ["136693071363"]


def test_intel_types_get_an_amd64_debian_ami():
    run = program(instanceType="c6i.large")
    (_, args) = next(c for c in run.calls if c[0] == "aws:ec2/getAmi:getAmi")
    assert {f["name"]: f["values"] for f in args["filters"]}["name"] == ["debian-12-amd64-*"]
    assert inputs_of(run, INSTANCE)[0]["ami"] == "ami-0amd640000000000"


# -- autoscaling fleet ----------------------------------------------------------------

def test_group_sizes_come_from_config(autoscale_run):
    (group,) = inputs_of(autoscale_run, GROUP)
    assert (group["minSize"], group["desiredCapacity"], group["maxSize"]) == (2, 3, 6)


def test_group_spans_every_subnet(autoscale_run):
    (group,) = inputs_of(autoscale_run, GROUP)
    assert len(group["vpcZoneIdentifiers"]) == 3


def test_group_metrics_are_enabled(autoscale_run):
    (group,) = inputs_of(autoscale_run, GROUP)
    assert set(group["enabledMetrics"]) == {"GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity",
                                            "GroupInServiceInstances", "GroupTotalInstances"}


def test_group_pins_the_launch_template_version_so_refresh_starts(autoscale_run):
    (group,) = inputs_of(autoscale_run, GROUP)
    assert group["launchTemplate"]["version"] == "1"
    assert group["instanceRefresh"]["strategy"] == "Rolling"


def test_group_scales_on_a_cpu_target(autoscale_run):
    (policy,) = inputs_of(autoscale_run, "aws:autoscaling/policy:Policy")
    assert policy["policyType"] == "TargetTrackingScaling"
    assert policy["targetTrackingConfiguration"]["targetValue"] == 60


def test_launch_template_requires_imdsv2_and_encrypts_a_gp3_root(autoscale_run):
    (lt,) = inputs_of(autoscale_run, LAUNCH_TEMPLATE)
    assert lt["metadataOptions"]["httpTokens"] == "required"
    assert lt["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (ebs,) = [b["ebs"] for b in lt["blockDeviceMappings"]]
    assert ebs == {"volumeType": "gp3", "volumeSize": 8, "encrypted": "true", "deleteOnTermination": "true"}
    assert lt["blockDeviceMappings"][0]["deviceName"] == "/dev/xvda"
    assert lt["monitoring"]["enabled"] is True


def test_launch_template_user_data_fetches_the_stored_package_and_waits_for_no_elastic_ip(autoscale_run):
    (lt,) = inputs_of(autoscale_run, LAUNCH_TEMPLATE)
    script = unpacked(lt["userData"])
    key, data = stored_package(autoscale_run)
    (bucket,) = autoscale_run.of_type("aws:s3/bucket:Bucket")
    assert script.startswith("#!/usr/bin/python3\n") and key == hashlib.sha256(data).hexdigest()
    assert f'"{key}"' in script and f'"host":"{bucket.state["bucket"]}.s3.eu-west-3.amazonaws.com"' in script
    assert script.endswith(f'S.call(["{package.CONFIGURE_PATH}",""]))\n')
    assert autoscale_run.outputs["boot_script_sha256"] == key


# -- access and secrets ---------------------------------------------------------------

def policy_of(run) -> dict:
    """The instance role's main inline policy (autoscale adds the drain's, see test_drain)."""
    (policy,) = [r.inputs for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "stun-infra-test-policy"]
    return json.loads(policy["policy"])


def test_role_reads_exactly_this_stacks_parameters(static_run):
    params = sorted(r.state["arn"] for r in static_run.of_type("aws:ssm/parameter:Parameter"))
    (read,) = [s for s in policy_of(static_run)["Statement"] if s["Sid"] == "ReadOwnParameters"]
    assert read["Action"] == ["ssm:GetParameter"] and sorted(read["Resource"]) == params
    assert all("/stun-infra/test/" in p for p in params)


def test_role_has_no_wildcard_action_and_no_managed_policies(any_run):
    actions = [a for p in inputs_of(any_run, "aws:iam/rolePolicy:RolePolicy")
               for s in json.loads(p["policy"])["Statement"] for a in s["Action"]]
    assert not [a for a in actions if a.endswith("*")]
    assert any_run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []


def test_role_can_ship_logs_only_to_its_log_group(static_run):
    (logs,) = [s for s in policy_of(static_run)["Statement"] if s["Sid"] == "ShipCoturnLogs"]
    assert logs["Resource"] == ["arn:aws:logs:eu-west-3:123456789012:log-group:/stun-infra/test/coturn",
                                "arn:aws:logs:eu-west-3:123456789012:log-group:/stun-infra/test/coturn:*"]


def test_role_publishes_metrics_only_to_its_namespaces(static_run):
    (put,) = [s for s in policy_of(static_run)["Statement"] if s["Sid"] == "PublishMetrics"]
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": ["StunInfra/test", "CWAgent"]}}


def test_role_allows_session_manager(static_run):
    (ssm,) = [s for s in policy_of(static_run)["Statement"] if s["Sid"] == "SessionManager"]
    assert "ssmmessages:OpenDataChannel" in ssm["Action"] and "ssm:UpdateInstanceInformation" in ssm["Action"]


def test_secrets_are_secure_string_parameters(static_run):
    kinds = {p["name"]: p["type"] for p in inputs_of(static_run, "aws:ssm/parameter:Parameter")}
    assert kinds == {"/stun-infra/test/turn-shared-secret": "SecureString",
                     "/stun-infra/test/tls-private-key": "SecureString",
                     "/stun-infra/test/tls-certificate": "String"}


@pytest.mark.parametrize("mode", ["static", "autoscale"])
def test_configure_reads_each_parameter_at_its_current_version(mode, static_run, autoscale_run):
    run = {"static": static_run, "autoscale": autoscale_run}[mode]
    scripts = [configure_of(run)]
    for param in run.of_type("aws:ssm/parameter:Parameter"):
        if param.inputs["name"].endswith("/turn-shared-secret"):  # the secret sync reads it by name
            assert f'{param.inputs["name"]}:' not in scripts[0]
            continue
        pinned = f'parameter "{param.inputs["name"]}:{param.state["version"]}"'
        assert all(pinned in script for script in scripts), pinned


def test_secret_parameters_are_passed_as_pulumi_secrets(static_run):
    for r in static_run.of_type("aws:ssm/parameter:Parameter"):
        assert ("value" in r.secret_inputs) == (r.inputs["type"] == "SecureString"), r.name


def test_no_secret_value_appears_in_any_user_data_or_the_package(any_run):
    user_data = [unpacked(r.inputs["userDataBase64"]) for r in any_run.of_type(INSTANCE)] + [
        unpacked(r.inputs["userData"]) for r in any_run.of_type(LAUNCH_TEMPLATE)]
    assert user_data
    shipped = list(files_of(stored_package(any_run)[1]).values())
    assert not [u for u in user_data + shipped if UNSEEN_SECRET in u or "PRIVATE KEY" in u]


def test_no_secret_value_appears_in_any_resource_input_but_its_parameter(any_run):
    holders = {r.name for r in any_run.registrations
               if UNSEEN_SECRET in json.dumps(r.inputs, default=str)}
    assert holders <= {"stun-infra-test-turn-secret", "stun-infra-test-tls-key", "stun-infra-test-cert"}


def test_user_supplied_certificate_replaces_the_self_signed_one():
    cert, key = certificate_and_key()
    run = program(tlsCertificate=cert, tlsPrivateKey=key, secret_keys=("tlsPrivateKey",))
    assert run.of_type("tls:index/selfSignedCert:SelfSignedCert") == []
    params = {p["name"]: p.get("value", p.get("insecureValue")) for p in inputs_of(run, "aws:ssm/parameter:Parameter")}
    assert params["/stun-infra/test/tls-certificate"] == cert


def test_self_signed_certificate_names_the_tls_domain(static_run):
    (cert,) = inputs_of(static_run, "tls:index/selfSignedCert:SelfSignedCert")
    assert cert["dnsNames"] == ["stun-infra.invalid"] and "server_auth" in cert["allowedUses"]


# -- outputs --------------------------------------------------------------------------

def test_static_outputs(static_run):
    o = static_run.outputs
    assert o["mode"] == "static" and o["region"] == "eu-west-3"
    assert len(o["instance_ids"]) == 3 and len(o["public_ips"]) == 3
    assert o["stun_uris"] == [f"stun:{ip}:3478" for ip in o["public_ips"]] + [
        f"stun:[{ip}]:3478" for ip in o["public_ipv6s"]]
    assert "asg_name" not in o


def test_autoscale_outputs(autoscale_run):
    o = autoscale_run.outputs
    assert o["mode"] == "autoscale" and o["asg_name"]
    assert "instance_ids" not in o and "public_ips" not in o


def test_turn_uris_cover_udp_tcp_and_tls(static_run):
    ip = static_run.outputs["public_ips"][0]
    assert {f"turn:{ip}:3478?transport=udp", f"turn:{ip}:3478?transport=tcp",
            f"turns:{ip}:5349?transport=tcp"} <= set(static_run.outputs["turn_uris"])


def test_secrets_are_secret_outputs(static_run):
    assert {"private_key_pem", "turn_shared_secret"} <= static_run.secret_outputs
    assert static_run.outputs["private_key_pem"].startswith("-----BEGIN")


def test_stun_only_exports_no_turn_uris_and_no_secret(stun_only_run):
    assert "turn_uris" not in stun_only_run.outputs and "turn_shared_secret" not in stun_only_run.outputs


def test_output_names_are_snake_case(any_run):
    assert all(k.replace("_", "").isalnum() and k == k.lower() for k in any_run.outputs)


