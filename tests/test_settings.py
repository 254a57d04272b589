"""Bad input is refused before any resource exists, with a message naming the key,
the value and what is allowed."""

from __future__ import annotations

import json

import pytest
import yaml

from stun_infra.cloud.offline import stack_config, stack_settings
from stun_infra.settings import (MAX_PARAMETER_BYTES, MAX_USER_TAGS, PROJECT_ROOT, ConfigError, Settings, _snake,
                                 architecture_of, key_specs, load_settings, split_config)

from .conftest import program
from .support.pem import certificate_and_key, private_key_pem
from .support.certs import make_ca

CA = make_ca()
USER_CERT = CA.issue("turn.example.com")
ZONE = "Z0123456789ABCDEFGHIJ"


def with_user_certificate(issued, **raw) -> Settings:
    return load_settings({"tlsCertificate": issued.cert_pem, "tlsPrivateKey": issued.key_pem, **raw},
                         stack="test", region="eu-west-3", secret_keys={"stun-infra:tlsPrivateKey"})


def user_certificate_problems(issued, **raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        with_user_certificate(issued, **raw)
    return caught.value.problems


def problems(**raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings({k: v for k, v in raw.items()}, stack="test", region="eu-west-3")
    return caught.value.problems


def only_problem(**raw) -> str:
    found = problems(**raw)
    assert len(found) == 1, found
    return found[0]


def test_defaults_load_without_any_config():
    s = load_settings({}, stack="test", region="eu-west-3")
    assert (s.mode, s.instance_count, s.min_size, s.desired_capacity, s.max_size) == ("static", 2, 2, 2, 4)
    assert s.ssh_allowed_cidrs == () and s.turn is True


def test_every_pulumi_yaml_key_is_a_settings_field_and_back():
    fields = set(Settings.__dataclass_fields__) - {"project", "stack", "region", "home_region"}
    assert {_snake(k) for k in key_specs()} == fields


def test_every_pulumi_yaml_key_has_type_default_and_description():
    for spec in key_specs().values():
        assert spec.type in {"string", "integer", "boolean", "array"}, spec
        assert spec.default is not None and spec.description, spec


def test_unknown_mode_is_refused():
    assert only_problem(mode="blue-green") == \
        'stun-infra:mode: got "blue-green", must be "static" or "autoscale"'


def test_instance_count_below_one_is_refused():
    assert only_problem(instanceCount="0") == 'stun-infra:instanceCount: got "0", must be a whole number from 1 to 100'


def test_a_string_where_a_number_belongs_is_refused():
    assert only_problem(instanceCount="two") == 'stun-infra:instanceCount: got "two", must be a whole number'


def test_a_fractional_number_is_refused():
    assert only_problem(maxSize="2.5") == 'stun-infra:maxSize: got "2.5", must be a whole number'


def test_a_non_boolean_turn_flag_is_refused():
    assert only_problem(turn="yes") == 'stun-infra:turn: got "yes", must be true or false'


def test_min_size_above_max_size_is_refused():
    assert only_problem(mode="autoscale", minSize="5", maxSize="3", desiredCapacity="3") == \
        "stun-infra:minSize: got 5, must not exceed stun-infra:maxSize (3)"


def test_desired_capacity_outside_min_and_max_is_refused():
    assert only_problem(mode="autoscale", minSize="2", maxSize="4", desiredCapacity="5") == \
        "stun-infra:desiredCapacity: got 5, must be between stun-infra:minSize (2) and stun-infra:maxSize (4)"


def test_fewer_than_two_zones_is_refused():
    assert only_problem(availabilityZones="1") == \
        'stun-infra:availabilityZones: got "1", must be a whole number from 2 to 6'


def test_more_zones_than_the_region_has_is_refused_before_any_resource():
    with pytest.raises(ConfigError) as caught:
        program(availabilityZones=6)
    assert "stun-infra:availabilityZones: got 6, but region eu-west-3 has 3 zones" in str(caught.value)


def test_an_invalid_vpc_cidr_is_refused():
    assert only_problem(vpcCidr="10.42.0.0/33") == \
        'stun-infra:vpcCidr: got "10.42.0.0/33", must be an IPv4 CIDR block with zero host bits, e.g. 10.42.0.0/16'


def test_a_public_vpc_cidr_is_refused():
    assert "must be a private (RFC 1918) range" in only_problem(vpcCidr="8.8.0.0/16")


def test_an_invalid_ssh_cidr_is_refused():
    assert only_problem(sshAllowedCidrs='["203.0.113.300/32"]') == (
        'stun-infra:sshAllowedCidrs: got ["203.0.113.300/32"], \'203.0.113.300/32\' is not a CIDR block '
        "such as 203.0.113.10/32 (host bits must be zero)")


@pytest.mark.parametrize("world", ["0.0.0.0/0", "::/0"])
def test_ssh_open_to_the_world_is_refused(world):
    assert f"'{world}' opens SSH to the whole internet" in only_problem(sshAllowedCidrs=f'["{world}"]')


def test_ssh_list_must_be_a_list_of_strings():
    assert only_problem(sshAllowedCidrs="203.0.113.7/32") == (
        'stun-infra:sshAllowedCidrs: got "203.0.113.7/32", must be a list of strings (YAML list or JSON array)')


def test_relay_range_upside_down_is_refused():
    assert only_problem(relayMinPort="60000", relayMaxPort="50000") == \
        "stun-infra:relayMinPort: got 60000, must be below stun-infra:relayMaxPort (50000)"


def test_relay_range_too_small_is_refused():
    assert only_problem(relayMinPort="50000", relayMaxPort="50010") == \
        "stun-infra:relayMaxPort: the relay range 50000-50010 holds 11 ports, must hold at least 100"


def test_relay_range_overlapping_the_stun_port_is_refused():
    assert only_problem(relayMinPort="3000", relayMaxPort="4000") == (
        "stun-infra:relayMinPort: the relay range 3000-4000 overlaps stun-infra:stunPort (3478); "
        "move the range above it")


def test_relay_range_overlapping_the_tls_port_is_refused():
    assert "overlaps stun-infra:tlsPorts (5349)" in only_problem(tlsPorts="[5349]", relayMinPort="5000", relayMaxPort="6000")


def test_relay_port_below_1024_is_refused():
    assert only_problem(relayMinPort="80") == 'stun-infra:relayMinPort: got "80", must be a whole number from 1024 to 65535'


def test_a_misspelt_key_is_refused_with_a_suggestion():
    message = only_problem(instancecount="3")
    assert message.startswith("stun-infra:instancecount: unknown key; did you mean stun-infra:instanceCount?")


def test_a_key_an_earlier_release_read_is_refused_with_the_steps_to_move_off_it():
    assert only_problem(tlsPort="443") == (
        "stun-infra:tlsPort: replaced by stun-infra:tlsPorts, a list; run `pulumi config rm stun-infra:tlsPort`, "
        "then, to keep your port, `pulumi config set --path 'stun-infra:tlsPorts[0]' PORT`")


def test_a_key_of_the_other_mode_is_refused():
    assert only_problem(mode="autoscale", instanceCount="5") == (
        "stun-infra:instanceCount: is only used in static mode but this stack has mode autoscale; "
        "remove it (pulumi config rm stun-infra:instanceCount)")


def test_a_certificate_without_its_key_is_refused():
    cert, _ = certificate_and_key()
    assert "tlsCertificate and tlsPrivateKey must be set together" in only_problem(tlsCertificate=cert)


def test_a_private_key_in_plain_text_config_is_refused():
    cert, key = certificate_and_key()
    with pytest.raises(ConfigError) as caught:
        load_settings({"tlsCertificate": cert, "tlsPrivateKey": key},
                      stack="test", region="eu-west-3", secret_keys=set())
    assert caught.value.problems == [
        "stun-infra:tlsPrivateKey: is stored in plain text; set it with "
        "`pulumi config set --secret stun-infra:tlsPrivateKey < key.pem`"]


def test_a_dns_zone_without_a_name_is_refused():
    assert only_problem(dnsZoneId="Z0123456789ABCDEFGHIJ") == \
        "stun-infra:dnsZoneId: dnsZoneId and dnsName must be set together (or neither)"


def test_a_dns_name_without_a_zone_is_refused():
    assert only_problem(dnsName="turn.example.com") == \
        "stun-infra:dnsZoneId: dnsZoneId and dnsName must be set together (or neither)"


def test_min_healthy_percentage_outside_0_to_100_is_refused():
    assert only_problem(mode="autoscale", minHealthyPercentage="101") == \
        'stun-infra:minHealthyPercentage: got "101", must be a whole number from 0 to 100'


def test_grace_period_below_the_boot_time_is_refused():
    assert only_problem(mode="autoscale", healthCheckGracePeriod="60") == \
        'stun-infra:healthCheckGracePeriod: got "60", must be a whole number from 180 to 7200'


def test_an_unsupported_log_retention_is_refused():
    assert only_problem(logRetentionDays="10").startswith(
        'stun-infra:logRetentionDays: got "10", must be one of the values CloudWatch Logs accepts: 1, 3, 5, 7, 14')


def test_a_malformed_tag_is_refused():
    assert only_problem(tags='["team"]') == \
        "stun-infra:tags: got [\"team\"], 'team' must be Key=Value (key 1-128 characters, value up to 256)"


def test_a_missing_region_is_refused():
    with pytest.raises(ConfigError) as caught:
        load_settings({}, stack="test", region="")
    assert caught.value.problems == [
        "aws:region: not set; choose the region, e.g. `pulumi config set aws:region eu-west-3`"]


def region_problems(region: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, stack="test", region=region)
    return caught.value.problems


def test_a_region_botocore_does_not_know_is_refused_naming_aws_region():
    (message,) = region_problems("eu-west-9")
    assert message.startswith('aws:region: got "eu-west-9", which is not an AWS region; did you mean eu-west-')
    assert "regions: af-south-1, ap-east-1," in message and "eu-west-3" in message and "cn-north-1" not in message


def test_a_region_with_a_trailing_newline_is_refused_and_shown_escaped():
    (message,) = region_problems("eu-west-3\n")
    assert message.startswith('aws:region: got "eu-west-3\\n", which is not an AWS region')
    assert "\n" not in message


def test_a_region_outside_the_commercial_partition_is_refused_with_the_reason():
    assert region_problems("cn-north-1") == [
        'aws:region: got "cn-north-1", a region of the aws-cn partition; stun-infra deploys only to aws regions '
        "(it uses Debian's AMIs and console URLs there)"]


@pytest.mark.parametrize("region", ["eu-west-3", "us-east-1", "ap-southeast-7", "mx-central-1"])
def test_every_commercial_region_botocore_knows_is_accepted(region):
    assert load_settings({}, stack="test", region=region).region == region



def test_every_problem_is_reported_at_once():
    assert len(problems(mode="x", instanceCount="0", vpcCidr="nope")) == 3


@pytest.mark.parametrize("bad", [
    {"instanceCount": 0}, {"availabilityZones": 6},
    {"instanceType": "c7gn.medium", "offered_zones": {"c7gn.medium": ["eu-west-3a"]}},
], ids=["settings-check", "zone-lookup-check", "instance-offering-check"])
def test_bad_config_creates_no_resource(bad, monkeypatch):
    from stun_infra.cloud.offline import RecordingMonitor
    created: list[str] = []
    original = RecordingMonitor.RegisterResource

    def spy(self, request):
        if request.type != "pulumi:pulumi:Stack":
            created.append(request.type)
        return original(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", spy)
    with pytest.raises(ConfigError):
        program(**bad)
    assert created == []


@pytest.mark.parametrize("instance_type,arch", [
    ("t4g.small", "arm64"), ("a1.large", "arm64"), ("c7gn.medium", "arm64"), ("m6gd.large", "arm64"), ("c7g.xlarge", "arm64"),
    ("t3.micro", "x86_64"), ("c6i.large", "x86_64"), ("g4dn.xlarge", "x86_64"), ("m7a.medium", "x86_64")])
def test_graviton_types_are_arm64_and_others_x86_64(instance_type, arch):
    assert architecture_of(instance_type) == arch


@pytest.mark.parametrize("halves", [["0.0.0.0/1", "128.0.0.0/1"], ["::/1", "8000::/1"]])
def test_ssh_open_to_the_world_in_pieces_is_refused(halves):
    message = only_problem(sshAllowedCidrs=json.dumps(halves))
    assert "the broadest range allowed is" in message and halves[0] in message


def test_ssh_from_a_slash_8_is_the_broadest_allowed():
    assert load_settings({"sshAllowedCidrs": '["10.0.0.0/8"]'}, stack="test", region="eu-west-3")


@pytest.mark.parametrize("stack", ["prod_eu", "prod.eu", "-prod", "a" * 41])
def test_a_stack_name_aws_cannot_name_resources_after_is_refused(stack):
    with pytest.raises(ConfigError) as caught:
        load_settings({}, stack=stack, region="eu-west-3")
    assert caught.value.problems == [
        f"stack name: got {stack!r}, must be 1-40 letters, digits and inner hyphens (resources are named after "
        "the stack and AWS load balancer names allow nothing else); rename it with `pulumi stack rename`"]


@pytest.mark.parametrize("tag", ["Name=x", "Project=other", "Stack=x", "ManagedBy=me"])
def test_tags_cannot_override_the_ones_stun_infra_sets(tag):
    assert only_problem(tags=json.dumps([tag])).endswith(
        "Name, Project, Stack, ManagedBy are set by stun-infra on every resource")


def test_an_invalid_instance_type_is_refused():
    assert only_problem(instanceType="large") == \
        'stun-infra:instanceType: got "large", must be an EC2 instance type such as t4g.small or c7gn.medium'


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_example_stack_files_are_valid(stack):
    assert stack_settings(stack).stack == stack


def test_dev_stack_is_small_and_prod_is_autoscale():
    dev = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    prod = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert dev["stun-infra:mode"] == "static" and prod["stun-infra:mode"] == "autoscale"


# -- values that break out of their line --------------------------------------------------

@pytest.mark.parametrize("key, value", [
    ("instanceType", "t4g.small\n"), ("tlsDomain", "turn.example.com\n"), ("dnsName", "turn.example.com\n"),
    ("dnsZoneId", "Z0123456789ABCDEFGHIJ\n"), ("alarmEmail", "ops@example.com\n"), ("realm", "stun-infra\n"),
    ("mode", "static\r"), ("alarmEmail", "ops@exa\x00mple.com"), ("tlsDomain", "turn\u2028example.com"),
])
def test_a_value_with_a_line_break_or_control_character_is_refused(key, value):
    message = " ".join(problems(**{key: value}))
    assert f"stun-infra:{key}: got " in message and "control character or line break" in message
    assert not any(c in message for c in "\n\r\x00\u2028")


@pytest.mark.parametrize("key", ["sshAllowedCidrs", "tags"])
def test_a_list_item_with_a_line_break_is_refused(key):
    item = "203.0.113.7/32\n" if key == "sshAllowedCidrs" else "team=blue\n"
    assert "control character or line break (U+000A)" in only_problem(**{key: json.dumps([item])})


@pytest.mark.parametrize("stack", ["dev\n", "dev\x1b[2J"])
def test_a_stack_name_with_a_control_character_is_refused_and_not_echoed_raw(stack):
    with pytest.raises(ConfigError) as caught:
        load_settings({}, stack=stack, region="eu-west-3")
    (message,) = caught.value.problems
    assert message.startswith("stack name: got ") and "\x1b" not in message and "\n" not in message


def test_a_yaml_block_scalar_in_a_stack_file_is_refused(tmp_path):
    """`key: |` keeps the trailing newline: the boot script would then fail `bash -n`."""
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  aws:region: eu-west-3\n  stun-infra:instanceType: |\n    t4g.small\n")
    config, _ = stack_config("dev", project_root=tmp_path)
    ours, dropped = split_config(config)
    with pytest.raises(ConfigError) as caught:
        load_settings(ours, stack="dev", region=config["aws:region"], dropped=dropped)
    assert caught.value.problems == [
        'stun-infra:instanceType: got "t4g.small\\n", holds a control character or line break (U+000A); '
        "it must be one line of visible characters"]


def test_control_characters_are_escaped_in_messages():
    message = only_problem(mode="\x1b[31mred")
    assert message.startswith('stun-infra:mode: got "\\u001b[31mred"') and "\x1b" not in message


def test_a_realm_longer_than_coturn_takes_is_refused():
    assert "must be 1-127 characters" in only_problem(realm="r" * 128)


# -- ports ----------------------------------------------------------------------------------

@pytest.mark.parametrize("port", [22, 68, 323])
def test_a_stun_port_another_service_on_the_instance_serves_is_refused(port):
    message = only_problem(stunPort=str(port))
    assert message.startswith(f'stun-infra:stunPort: got "{port}", must be a port from 1 to 65535 that nothing else')
    assert "22 (sshd)" in message and "open to the whole internet" in message


@pytest.mark.parametrize("port", [22, 68, 323])
def test_a_tls_port_another_service_on_the_instance_serves_is_refused(port):
    message = only_problem(tlsPorts=f"[{port}]")
    assert message.startswith(f"stun-infra:tlsPorts: got [{port}], {port}: must be a port from 1 to 65535 that nothing")
    assert "22 (sshd)" in message and "open to the whole internet" in message


def test_ssh_reaches_the_world_through_no_setting():
    """Port 22 opens only to sshAllowedCidrs: no listening port may be 22."""
    for key, value in (("stunPort", 22), ("tlsPorts", [22])):
        with pytest.raises(ConfigError):
            program(**{key: value})


# -- tags -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["team=a,b", "team=it's", "team=$HOME", "cost center!=x", "team=a\tb",
                                 "team=" + "\u00e9" * 257, "k" * 129 + "=v"])
def test_a_tag_aws_would_refuse_is_a_config_error_naming_tags(tag):
    message = only_problem(tags=json.dumps([tag]))
    assert message.startswith("stun-infra:tags: got ")
    assert ("only letters, digits, spaces and _.:/=+-@" in message or "key 1-128 characters, value up to 256" in
            message or "control character" in message)


def test_tags_with_letters_digits_spaces_and_allowed_punctuation_pass():
    tags = ["Team=Video Calls", "cost-center=42", "owner=ops@example.com", "path=/a/b:c+d=e_f.g", "Équipe=Nuit"]
    assert dict(load_settings({"tags": json.dumps(tags)}, stack="test", region="eu-west-3").tags)["Équipe"] == "Nuit"


def test_tag_keys_that_differ_only_by_case_are_refused():
    assert only_problem(tags='["Team=a", "team=b"]').endswith("tag 'team' is the same key as 'Team' (AWS ignores case)")


def test_a_tag_that_differs_from_one_stun_infra_sets_only_by_case_is_refused():
    assert only_problem(tags='["name=x"]').endswith("are set by stun-infra on every resource")


# -- certificates and keys ------------------------------------------------------------------

def secret_settings(**raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="test", region="eu-west-3", secret_keys={"stun-infra:tlsPrivateKey"})
    return caught.value.problems


def test_a_certificate_that_does_not_parse_is_refused_without_echoing_it():
    _, key = certificate_and_key()
    (message,) = secret_settings(tlsCertificate="-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
                                 tlsPrivateKey=key)
    assert message.startswith("stun-infra:tlsCertificate: got a 62-character value (not shown), must be a PEM "
                              "certificate chain")


def test_a_certificate_value_holding_a_private_key_is_refused_without_echoing_the_key():
    cert, key = certificate_and_key()
    (message,) = secret_settings(tlsCertificate=cert + key, tlsPrivateKey=key)
    assert "holds a private key" in message and "stun-infra:tlsPrivateKey" in message
    assert "PRIVATE KEY-----" not in message and key.splitlines()[1] not in message


def test_a_private_key_that_does_not_parse_is_refused_without_echoing_it():
    cert, _ = certificate_and_key()
    garbage = "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n"
    (message,) = secret_settings(tlsCertificate=cert, tlsPrivateKey=garbage)
    assert message.startswith("stun-infra:tlsPrivateKey: got a 64-character value (not shown), must be a PEM "
                              "private key") and "not-a-key" not in message


def test_a_private_key_of_another_certificate_is_refused():
    cert, _ = certificate_and_key()
    assert secret_settings(tlsCertificate=cert, tlsPrivateKey=private_key_pem()) == [
        "stun-infra:tlsPrivateKey: is not the key of the first certificate in stun-infra:tlsCertificate "
        "(the server's own certificate comes first, then the chain)"]


def test_a_certificate_chain_and_its_key_pass():
    cert, key = certificate_and_key()
    other, _ = certificate_and_key("ca.example.com")
    s = load_settings({"tlsCertificate": cert + other, "tlsPrivateKey": key}, stack="test", region="eu-west-3",
                      secret_keys={"stun-infra:tlsPrivateKey"})
    assert s.tls.user and key not in repr(s)


# -- keys nobody reads ----------------------------------------------------------------------

def test_a_key_without_a_namespace_is_an_error_naming_it():
    assert split_config({"mode": "autoscale", "aws:region": "eu-west-3"}) == ({}, ["mode"])
    with pytest.raises(ConfigError) as caught:
        load_settings({}, stack="test", region="eu-west-3", dropped=["mode"])
    assert caught.value.problems == [
        "mode: has no namespace, so it would be ignored; did you mean stun-infra:mode? this program's keys are "
        "stun-infra:<key>, its providers' aws:, pulumi:, tls:, random:"]


def test_a_key_in_a_namespace_nobody_reads_is_an_error_naming_it():
    ours, dropped = split_config({"stun_infra:instanceCount": "3", "aws:region": "eu-west-3",
                                  "stun-infra:mode": "static"})
    assert ours == {"mode": "static"} and dropped == ["stun_infra:instanceCount"]
    with pytest.raises(ConfigError) as caught:
        load_settings(ours, stack="test", region="eu-west-3", dropped=dropped)
    assert caught.value.problems[0].startswith(
        "stun_infra:instanceCount: is in namespace 'stun_infra', which nothing here reads, so it would be ignored; "
        "did you mean stun-infra:instanceCount?")


def test_bare_keys_in_a_stack_file_are_an_error(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: eu-west-3\n  instanceCount: 3\n")
    config, _ = stack_config("dev", project_root=tmp_path)
    assert split_config(config)[1] == ["instanceCount"]


def test_settings_outside_config_in_a_stack_file_are_an_error(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text("stun-infra:instanceCount: 3\nconfig:\n  aws:region: eu-west-3\n")
    with pytest.raises(ConfigError) as caught:
        stack_config("dev", project_root=tmp_path)
    assert caught.value.problems == [
        "Pulumi.dev.yaml: stun-infra:instanceCount: not a stack file setting, so it would be ignored; config goes "
        "under `config:` as `stun-infra:<key>: value`"]


@pytest.mark.parametrize("text, fragment", [
    ("config: [unclosed\n", "is not valid YAML at line 2, column 1"),
    ("- a\n- b\n", "must be a map with a `config:` map"),
    ("config: just-text\n", "must be a map with a `config:` map"),
    ("config:\n  a: " + "[" * 5000 + "\n", "is not valid YAML"),
])
def test_a_stack_file_that_is_not_a_yaml_map_is_one_problem(tmp_path, text, fragment):
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        stack_config("dev", project_root=tmp_path)
    (message,) = caught.value.problems
    assert message.startswith("Pulumi.dev.yaml: ") and fragment in message


# -- AWS limits a config key can push past: refused before any resource ----------------

def test_more_tags_than_fit_in_awss_50_per_resource_are_refused_naming_tags():
    tags = json.dumps([f"k{i}=v" for i in range(MAX_USER_TAGS + 1)])
    assert only_problem(tags=tags) == (
        f"stun-infra:tags: {MAX_USER_TAGS + 1} tags given, at most {MAX_USER_TAGS}: AWS allows 50 per resource "
        "and stun-infra sets up to 5 itself (Name, Project, Stack, ManagedBy, Tier)")


def test_the_most_tags_allowed_keep_every_resource_within_awss_50():
    from tests.support import aws_constraints

    run = program(mode="autoscale", tags=json.dumps([f"k{i}=v" for i in range(MAX_USER_TAGS)]))
    assert max(len(r.inputs.get("tags") or {}) for r in run.registrations) == 50
    assert [str(v) for v in aws_constraints.violations(run)] == []


def test_a_certificate_chain_larger_than_its_ssm_parameter_holds_is_refused():
    cert, key = certificate_and_key()
    chain = cert * (MAX_PARAMETER_BYTES // len(cert) + 1)
    with pytest.raises(ConfigError) as caught:
        load_settings({"tlsCertificate": chain, "tlsPrivateKey": key}, stack="test", region="eu-west-3",
                      secret_keys={"stun-infra:tlsPrivateKey"})
    assert caught.value.problems == [
        f"stun-infra:tlsCertificate: is {len(chain)} bytes, at most 8192 fit in the SSM parameter the instance "
        "reads it from (an advanced parameter); drop what the server does not send (the root certificate, comments)"]


def test_a_certificate_chain_that_fits_its_ssm_parameter_is_accepted():
    cert, key = certificate_and_key()
    chain = cert * (MAX_PARAMETER_BYTES // len(cert))
    assert load_settings({"tlsCertificate": chain, "tlsPrivateKey": key}, stack="test", region="eu-west-3",
                         secret_keys={"stun-infra:tlsPrivateKey"}).tls_certificate == chain


def test_more_ssh_cidrs_than_a_security_group_holds_rules_for_are_refused_before_any_resource():
    cidrs = [f"203.0.113.{i}/32" for i in range(60)]
    with pytest.raises(ConfigError) as caught:
        program(sshAllowedCidrs=json.dumps(cidrs))
    assert caught.value.problems == [
        "stun-infra:sshAllowedCidrs: 60 IPv4 CIDRs make 64 inbound IPv4 rules in the security group, AWS allows "
        "60 per IP version; list at most 56 IPv4 CIDRs (e.g. one covering range instead of many /32s)"]


def test_as_many_ssh_cidrs_as_the_security_group_holds_are_accepted():
    run = program(sshAllowedCidrs=json.dumps([f"203.0.113.{i}/32" for i in range(56)]))
    assert len(run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")) == 4 + 4 + 56


def test_the_longest_stack_name_fits_every_aws_name_limit():
    from tests.support import aws_constraints

    for mode in ("static", "autoscale"):
        run = program("s" * 40, mode=mode, dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com")
        assert [str(v) for v in aws_constraints.violations(run)] == []
# -- TURN over TLS: ports, zone, the user's certificate ----------------------------------

def test_tls_ports_default_to_5349_alone_with_the_self_signed_certificate():
    s = load_settings({}, stack="test", region="eu-west-3")
    assert (s.tls.ports, s.tls.coturn_port, s.tls.trusted) == ((5349,), 5349, False)


def test_tls_ports_default_to_443_and_5349_with_a_zone():
    s = load_settings({"dnsZoneId": ZONE, "dnsName": "turn.example.com"}, stack="test", region="eu-west-3")
    assert (s.tls.ports, s.tls.coturn_port, s.tls.host) == ((443, 5349), 443, "turn.example.com")


def test_tls_ports_are_taken_as_given():
    s = load_settings({"tlsPorts": "[8443]"}, stack="test", region="eu-west-3")
    assert s.tls.ports == (8443,)


def test_a_tls_port_equal_to_the_stun_port_is_refused():
    assert only_problem(tlsPorts="[443, 3478]") == \
        "stun-infra:tlsPorts: got [443, 3478], must not include stun-infra:stunPort (3478)"


def test_a_tls_port_given_twice_is_refused():
    assert only_problem(tlsPorts="[443, 443]") == 'stun-infra:tlsPorts: got [443, 443], lists a port twice'


def test_a_tls_port_out_of_range_is_refused():
    assert "must be a port from 1 to 65535" in only_problem(tlsPorts="[0]")


def test_tls_ports_that_are_not_numbers_are_refused():
    assert "must be a list of whole numbers" in only_problem(tlsPorts='["https"]')


def test_a_tls_port_inside_the_relay_range_is_refused():
    assert only_problem(tlsPorts="[50443]") == (
        "stun-infra:relayMinPort: the relay range 49152-65535 overlaps stun-infra:tlsPorts (50443); "
        "move the range above it")


def test_a_zone_id_that_does_not_look_like_one_is_refused():
    assert only_problem(dnsZoneId="example.com", dnsName="turn.example.com") == (
        'stun-infra:dnsZoneId: got "example.com", must be a Route 53 hosted zone id such as '
        "Z0123456789ABCDEFGHIJ, or empty")


def test_an_expired_user_certificate_is_refused():
    (problem,) = user_certificate_problems(CA.issue("turn.example.com", days=-1, not_before_days=-30))
    assert problem.startswith("stun-infra:tlsCertificate: expired on ")


def test_a_user_certificate_for_another_name_is_refused():
    (problem,) = user_certificate_problems(CA.issue("other.example.org"),
                                           dnsZoneId=ZONE, dnsName="turn.example.com")
    assert problem == ("stun-infra:tlsCertificate: names other.example.org, not stun-infra:dnsName "
                       "(turn.example.com); browsers would refuse it: supply a certificate for that name")


def test_a_wildcard_user_certificate_covers_one_label():
    s = with_user_certificate(CA.issue("*.example.com"), dnsZoneId=ZONE, dnsName="turn.example.com")
    assert s.tls.user and not s.tls.acm and s.tls.host == "turn.example.com"


def test_a_user_certificate_without_a_dns_name_gives_turns_its_own_name():
    s = with_user_certificate(USER_CERT)
    assert (s.tls.host, s.tls.ports) == ("turn.example.com", (443, 5349))
@pytest.mark.parametrize("seconds", ["59", "3601"])
def test_a_drain_time_outside_what_aws_allows_is_refused(seconds):
    assert only_problem(mode="autoscale", drainSeconds=seconds) == \
        f'stun-infra:drainSeconds: got "{seconds}", must be a whole number from 60 to 3600'


def test_a_sessions_target_below_one_is_refused():
    assert only_problem(mode="autoscale", scalingMetric="sessions", scalingSessionsTarget="0") == \
        'stun-infra:scalingSessionsTarget: got "0", must be a whole number from 1 to 1000000'


def test_a_sessions_target_above_total_quota_is_refused():
    assert only_problem(mode="autoscale", scalingMetric="sessions", scalingSessionsTarget="1001") == (
        "stun-infra:scalingSessionsTarget: got 1001, must not exceed stun-infra:totalQuota (1000): coturn "
        "refuses sessions beyond it, so the target would never be reached")


def test_scaling_on_sessions_with_turn_off_is_refused():
    assert only_problem(mode="autoscale", scalingMetric="sessions", turn="false") == (
        'stun-infra:scalingMetric: got "sessions", but stun-infra:turn is false: a STUN-only fleet has no '
        'TURN sessions to scale on; use "cpu"')


def test_an_unknown_scaling_metric_is_refused():
    assert only_problem(mode="autoscale", scalingMetric="memory") == \
        'stun-infra:scalingMetric: got "memory", must be "cpu" or "sessions"'


def test_a_bad_value_set_as_a_secret_is_not_shown():
    with pytest.raises(ConfigError) as caught:
        load_settings({"alarmEmail": "hunter2-not-an-email"}, stack="test", region="eu-west-3",
                      secret_keys={"stun-infra:alarmEmail"})
    assert caught.value.problems == [
        "stun-infra:alarmEmail: got a 20-character value (not shown), must be an email address or empty"]


# -- TURN secret rotation ----------------------------------------------------------------------

STRONG, OTHER = "strong-0123456789abcdefghijKLMNOPQRSTuv", "other-ABCDEFGHIJklmnopqrst0123456789wxyz"
ROTATION_SECRETS = {"stun-infra:turnSecret", "stun-infra:turnSecretPrevious"}


def rotation_problems(**raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="test", region="eu-west-3", secret_keys=ROTATION_SECRETS)
    return caught.value.problems


def test_a_rotation_in_progress_loads():
    s = load_settings({"turnSecret": STRONG, "turnSecretPrevious": OTHER, "turnSecretRotatedAt": "2026-12-01T10:00:00Z"},
                      stack="test", region="eu-west-3", secret_keys=ROTATION_SECRETS)
    assert (s.turn_secret, s.turn_secret_previous) == (STRONG, OTHER)
    assert STRONG not in repr(s) and OTHER not in repr(s)


@pytest.mark.parametrize("weak", ["x" * 31, "a" * 40, "with space 0123456789abcdefghijklmnopqrstu", "é" * 40,
                                  "0123456789abcdef" + "z" * 241],
                         ids=["short", "few-characters", "space", "non-ascii", "too-long"])
def test_a_weak_turn_secret_is_refused_without_being_shown(weak):
    (message,) = rotation_problems(turnSecret=weak)
    assert message.startswith("stun-infra:turnSecret: got a ") and "(not shown)" in message
    assert weak not in message


def test_a_turn_secret_in_plain_text_is_refused():
    with pytest.raises(ConfigError) as caught:
        load_settings({"turnSecret": STRONG}, stack="test", region="eu-west-3")
    assert caught.value.problems == ["stun-infra:turnSecret: is stored in plain text; set it as a secret "
                                     "(`stun-infra secret rotate` does)"]


def test_a_previous_secret_needs_a_current_one_and_a_start_time():
    found = rotation_problems(turnSecretPrevious=OTHER)
    assert any("turnSecretPrevious: is set without stun-infra:turnSecret" in p for p in found)
    assert any("turnSecretPrevious and turnSecretRotatedAt must be set together" in p for p in found)


def test_a_previous_secret_equal_to_the_current_one_is_refused():
    (message,) = rotation_problems(turnSecret=STRONG, turnSecretPrevious=STRONG,
                                   turnSecretRotatedAt="2026-12-01T10:00:00Z")
    assert "equals stun-infra:turnSecret" in message and STRONG not in message


@pytest.mark.parametrize("when, why", [("2026-12-01 10:00", "must be a UTC time"), ("2999-01-01T00:00:00Z", "future")])
def test_a_bad_rotation_start_time_is_refused(when, why):
    (message,) = rotation_problems(turnSecret=STRONG, turnSecretPrevious=OTHER, turnSecretRotatedAt=when)
    assert message.startswith("stun-infra:turnSecretRotatedAt:") and why in message


def test_a_stun_only_stack_takes_no_turn_secret():
    (message,) = rotation_problems(turn="false", turnSecret=STRONG)
    assert "STUN-only stack" in message

