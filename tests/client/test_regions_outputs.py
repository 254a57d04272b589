"""A multi-region stack's outputs as `probe` and `credentials` read them: every region's hosts
labelled with their region, the global entry's apart, each region's instances probed too."""

from __future__ import annotations

import json

import pytest

from stun_infra.client.probing import Result, table
from stun_infra.client.targets import Check, InputError, read_servers
from stun_infra.cloud.offline import run_offline, stack_config

THREE = '["eu-west-3", "us-east-1", "ap-southeast-1"]'


@pytest.fixture(scope="module")
def outputs() -> dict:
    config, secret_keys = stack_config("dev", {"regions": THREE, "ipv6": "false", "dnsZoneId": "Z0123456789ABCDEFGHIJ",
                                               "dnsName": "turn.example.com"})
    run = run_offline(config, stack="dev", secret_keys=secret_keys)
    return {**run.outputs, "turn_shared_secret": "a-secret-for-this-test-only-0123456789"}


def test_each_regions_hosts_are_labelled_with_their_region(outputs):
    servers = read_servers(json.dumps(outputs))
    assert servers.region_of("us-east-1.turn.example.com") == "us-east-1"
    assert servers.region_of(outputs["regions"]["ap-southeast-1"]["public_ips"][0]) == "ap-southeast-1"
    assert servers.region_of("turn.example.com") == "global"


def test_the_global_entry_is_labelled_with_the_region_whose_instance_relayed(outputs):
    servers = read_servers(json.dumps(outputs))
    relayed = outputs["regions"]["us-east-1"]["public_ips"][1]
    assert servers.region_of("turn.example.com", f"{relayed}:50123") == "global: us-east-1"
    assert servers.region_of("turn.example.com", "192.0.2.9:50123") == "global"


def test_every_regions_instances_are_probed_directly(outputs):
    servers = read_servers(json.dumps(outputs))
    every_ip = {ip for region in outputs["regions"].values() for ip in region["public_ips"]}
    assert every_ip <= set(servers.public_ips)
    assert servers.global_stun_uris == ("stun:turn.example.com:3478",)


def test_a_region_whose_outputs_are_not_a_map_is_refused(outputs):
    with pytest.raises(InputError, match="regions must map each region to its outputs"):
        read_servers(json.dumps({**outputs, "regions": {"us-east-1": ["stun:x:3478"]}}))


def test_a_one_region_stacks_hosts_have_no_region():
    servers = read_servers(json.dumps({"stun_uris": ["stun:203.0.113.5:3478"]}))
    assert servers.region_of("203.0.113.5") == ""


def test_the_table_has_a_region_column_only_with_regions():
    results = [Result(Check("stun-udp", "203.0.113.5", 3478), "ok", "mapped x", rtt_ms=1.0)]
    assert table(results).splitlines()[0].split() == ["ENDPOINT", "CHECK", "RESULT", "TIME", "DETAIL"]
    results[0].region = "us-east-1"
    header, row = table(results).splitlines()
    assert header.split() == ["ENDPOINT", "REGION", "CHECK", "RESULT", "TIME", "DETAIL"]
    assert row.split()[:3] == ["203.0.113.5:3478", "us-east-1", "stun-udp"]
    assert results[0].as_dict()["region"] == "us-east-1"


def urls_of(stdout: str) -> list[str]:
    return [u for server in json.loads(stdout)["iceServers"] for u in server["urls"]]


def test_credentials_list_the_global_entry_alone_by_default(outputs):
    from tests.commands.conftest import cli
    result = cli("credentials", stdin=json.dumps(outputs))
    assert result.returncode == 0, result.stderr
    assert urls_of(result.stdout) == [*outputs["global_stun_uris"], *outputs["global_turn_uris"]]


def test_credentials_for_every_region_list_the_global_entry_first(outputs):
    from tests.commands.conftest import cli
    result = cli("credentials", "--every-region", stdin=json.dumps(outputs))
    assert result.returncode == 0, result.stderr
    urls = urls_of(result.stdout)
    assert set(urls) == {*outputs["stun_uris"], *outputs["turn_uris"]}
    assert urls[0] == "stun:turn.example.com:3478"
