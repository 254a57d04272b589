"""`stun-infra render`: the files an instance writes at boot, for given addresses and secret.

turnserver.conf comes from the same template the boot script embeds, so what is
rendered here is what the instance runs. By default its paths point into --out (with a
throwaway self-signed certificate) so that `turnserver -c OUT/turnserver.conf` starts
on this machine; --instance-paths renders the instance's own paths instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
from pathlib import Path

from stun_infra.commands.common import add_stack_arguments, fail, stack_settings
from stun_infra.instance.coturn import INSTANCE_PATHS, local_paths, turnserver_conf
from stun_infra.settings import ConfigError
from stun_infra.instance.userdata import BootInputs, ParameterNames, agent_config, render_user_data

SECRET_ENV = "STUN_INFRA_TURN_SECRET"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="write user-data.sh, turnserver.conf and the agent config to a folder",
                       description=__doc__)
    add_stack_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="folder to write into (created if missing)")
    p.add_argument("--public-ip", default="127.0.0.1", help="the instance's public IPv4 (default 127.0.0.1)")
    p.add_argument("--private-ip", default="127.0.0.1", help="the instance's private IPv4 (default 127.0.0.1)")
    p.add_argument("--ipv6", default="",
                   help="the instance's IPv6 address, when it has one (default: none, IPv4 only)")
    p.add_argument("--turn-secret", default=None,
                   help=f"TURN shared secret (default: ${SECRET_ENV}, else a fresh random one)")
    p.add_argument("--parameter-version", type=int, default=None, metavar="N",
                   help="read every parameter at version N (`name:N`), as a deployed stack pins them "
                        "(default: the latest version)")
    p.add_argument("--instance-paths", action="store_true",
                   help="use the instance's paths (/etc/coturn/...) instead of files in --out")
    p.set_defaults(run=run)


def _ipv4(value: str, flag: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ConfigError([f"{flag}: got {value!r}, must be an IPv4 address such as 203.0.113.10"]) from None


def _ipv6(value: str, flag: str) -> str:
    try:
        return str(ipaddress.IPv6Address(value))
    except ValueError:
        raise ConfigError([f"{flag}: got {value!r}, must be an IPv6 address such as 2001:db8::10"]) from None


def _write(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    path.chmod(mode)


def run(args: argparse.Namespace) -> int:
    from stun_infra.client.turn_client import make_self_signed

    try:
        settings = stack_settings(args)
        public_ip = _ipv4(args.public_ip, "--public-ip")
        private_ip = _ipv4(args.private_ip, "--private-ip")
        ipv6 = _ipv6(args.ipv6, "--ipv6") if args.ipv6 else ""
    except ConfigError as e:
        return fail(str(e))
    secret = args.turn_secret or os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    paths = INSTANCE_PATHS if args.instance_paths else local_paths(out)
    if not args.instance_paths:
        make_self_signed(out, settings.tls_domain)
    names = ParameterNames.under(settings.ssm_path, settings.turn)
    if args.parameter_version:
        names = names.at(args.parameter_version, args.parameter_version, args.parameter_version)
    boot = BootInputs(parameters=names,
                      expected_public_ip="" if settings.autoscale else public_ip)
    _write(out / "user-data.sh", render_user_data(settings, boot), 0o755)
    _write(out / "turnserver.conf",
           turnserver_conf(settings, public_ip=public_ip, private_ip=private_ip, turn_secret=secret, paths=paths,
                           ipv6=ipv6),
           0o600)
    _write(out / "amazon-cloudwatch-agent.json", agent_config(settings), 0o644)
    print(f"wrote {out}/user-data.sh, turnserver.conf, amazon-cloudwatch-agent.json"
          + ("" if args.instance_paths else ", cert.pem, key.pem"))
    print(f"try it: turnserver -c {out}/turnserver.conf")
    return 0
