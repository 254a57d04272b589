"""CIDRs reach AWS in the one form it takes (ADDRESS/LENGTH, no zone) and are compared as
networks: a netmask, a hostmask or an IPv6 `%zone` is refused, one network spelt two ways
is one network, and the spelling AWS gets is the canonical one."""

from __future__ import annotations

import json

import pytest

from stun_infra.settings import ConfigError, load_settings

from .conftest import inputs_of, program

RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def problems(**raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="test", region="eu-west-3")
    return caught.value.problems


@pytest.mark.parametrize("cidr", ["203.0.113.0/255.255.255.0", "203.0.113.0/0.0.0.255"])
def test_a_netmask_or_hostmask_ssh_cidr_is_refused(cidr):
    assert problems(sshAllowedCidrs=json.dumps([cidr])) == [
        f"stun-infra:sshAllowedCidrs: got {json.dumps([cidr])}, '{cidr}': give the prefix length as a number "
        "(AWS takes ADDRESS/LENGTH, such as 10.42.0.0/16), not a netmask or hostmask"]


@pytest.mark.parametrize("cidr", ["2001:db8::%eth0/64", "2001:db8::%any text/64"])
def test_an_ipv6_cidr_with_a_zone_is_refused(cidr):
    (problem,) = problems(sshAllowedCidrs=json.dumps([cidr]))
    assert "names a zone (%...)" in problem


@pytest.mark.parametrize("cidr", ["10.42.0.0/255.255.0.0", "10.42.0.0/0.0.255.255"])
def test_a_netmask_vpc_cidr_is_refused(cidr):
    (problem,) = problems(vpcCidr=cidr)
    assert problem.startswith(f'stun-infra:vpcCidr: got "{cidr}", ') and "not a netmask or hostmask" in problem


def test_one_network_spelt_two_ways_is_listed_twice():
    (problem,) = problems(ipv6="true", sshAllowedCidrs='["2001:db8:1::/48", "2001:DB8:0001:0::/48"]')
    assert problem.endswith("lists 2001:db8:1::/48 twice (however it is spelt, it is one network)")


def test_settings_keep_the_canonical_spelling():
    s = load_settings({"sshAllowedCidrs": '["2001:DB8:0001:0::/48"]'}, stack="test", region="eu-west-3")
    assert s.ssh_allowed_cidrs == ("2001:db8:1::/48",)


def test_aws_gets_the_canonical_spelling():
    run = program(sshAllowedCidrs='["2001:DB8:0001:0::/48"]')
    assert [r["cidrIpv6"] for r in inputs_of(run, RULE) if r.get("fromPort") == 22] == ["2001:db8:1::/48"]
