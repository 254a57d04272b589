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

from stun_infra.commands.common import SECRET_ENV, add_stack_arguments, config_folder, fail, stack_settings, turn_secret
from stun_infra.instance.coturn import INSTANCE_PATHS, local_paths, turnserver_conf
from stun_infra.instance.secret_sync import fill_store
from stun_infra.common.text import printable
from stun_infra.settings import SUPPORTED_PARTITION, ConfigError, Settings
from stun_infra.instance.tls_sync import ACM_ARN
from stun_infra.instance.nlb_targets import TargetGroupPort, checked
from stun_infra.cloud.components.artifact import BUCKET_PREFIX
from stun_infra.instance import package as instance_package
from stun_infra.instance.boot_inputs import BootInputs, ParameterNames
from stun_infra.instance.cloudwatch_agent import agent_config
from stun_infra.instance.userdata import BUCKET_NAME, render_user_data

DEFAULT_BUCKET = BUCKET_PREFIX + "0" * 26
PACKAGE_FILE = f"{instance_package.NAME}.deb"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="write the user data, the instance package, turnserver.conf and the agent config to a folder",
                       description=__doc__)
    add_stack_arguments(p)
    p.add_argument("--out", required=True, help="folder to write into (created if missing)")
    p.add_argument("--public-ip", default="127.0.0.1", help="the instance's public IPv4 (default 127.0.0.1)")
    p.add_argument("--private-ip", default="127.0.0.1", help="the instance's private IPv4 (default 127.0.0.1)")
    p.add_argument("--ipv6", default="",
                   help="the instance's IPv6 address, when it has one (default: none, IPv4 only)")
    p.add_argument("--turn-secret", default=None,
                   help=f"TURN shared secret (default: ${SECRET_ENV}, else a fresh random one)")
    p.add_argument("--parameter-version", type=int, default=None, metavar="N",
                   help="read every parameter at version N (`name:N`), as a deployed stack pins them "
                        "(default: the latest version)")
    p.add_argument("--certificate-arn", default="", metavar="ARN",
                   help="static mode with dnsZoneId/dnsName: the ACM certificate the instances export "
                        "(`pulumi stack output tls_certificate_arn`)")
    p.add_argument("--ipv6-target-group", action="append", default=[], metavar="ARN=PORT",
                   help="autoscale, dual stack: an IPv6 target group of the load balancer and the instance port "
                        "it sends to; the boot script registers the instance's IPv6 address in it (repeatable)")
    p.add_argument("--bucket", default=DEFAULT_BUCKET, metavar="NAME",
                   help="the stack's package bucket the user data fetches from "
                        "(`pulumi stack output instance_package_bucket`; default: a stand-in name)")
    p.add_argument("--instance-paths", action="store_true",
                   help="use the instance's paths (/etc/coturn/...) instead of files in --out")
    p.set_defaults(run=run)


def _ipv4(value: str, flag: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ConfigError([f"{flag}: got {printable(repr(value))}, must be an IPv4 address such as "
                           "203.0.113.10"]) from None


def _ipv6(value: str, flag: str, settings: Settings) -> str:
    """An instance's own IPv6 address: no zone (`%eth0` would reach the config as it is)."""
    if not settings.ipv6:
        raise ConfigError([f"{flag}: this stack has stun-infra:ipv6 false, so its instances have no IPv6 "
                           "address; leave it out (or set ipv6 true)"])
    try:
        ip = ipaddress.IPv6Address(value)
    except ValueError:
        ip = None
    if ip is None or ip.scope_id is not None or ip.is_multicast or ip.is_unspecified:
        raise ConfigError([f"{flag}: got {printable(repr(value))}, must be an IPv6 unicast address without a "
                           "zone, such as 2001:db8::10"])
    return str(ip)


def _in_stack_region(arn: str, flag: str, settings: Settings) -> str:
    """An ARN of the stack's own partition and region: the instances reach nothing else."""
    parts = arn.split(":")
    if (parts[1], parts[3]) != (SUPPORTED_PARTITION, settings.region):
        raise ConfigError([f"{flag}: got {printable(repr(arn))}, an ARN of {parts[1]}/{parts[3]}; this stack "
                           f"is in {SUPPORTED_PARTITION}/{settings.region}: give that stack's ARN"])
    return arn


def _certificate_arn(value: str, settings: Settings) -> str:
    """Static mode with a zone needs the ACM certificate's ARN, which goes into the script."""
    if not settings.tls.acm_export:
        if value:
            raise ConfigError(["--certificate-arn: only static mode with stun-infra:dnsZoneId/dnsName exports "
                               "an ACM certificate; leave it out"])
        return ""
    if not value:
        raise ConfigError(["--certificate-arn: this stack (static mode, dnsZoneId/dnsName) serves an ACM "
                           "certificate; give its ARN: `pulumi stack output tls_certificate_arn`"])
    if not ACM_ARN.fullmatch(value):
        raise ConfigError([f"--certificate-arn: got {printable(repr(value))}, must be an ACM certificate ARN such as "
                           "arn:aws:acm:eu-west-3:123456789012:certificate/0123abcd-..."])
    return _in_stack_region(value, "--certificate-arn", settings)


def _ipv6_target_groups(values: list[str], settings: Settings) -> tuple[TargetGroupPort, ...]:
    if values and not (settings.autoscale and settings.ipv6):
        raise ConfigError(["--ipv6-target-group: only autoscale mode with stun-infra:ipv6 has IPv6 target groups"])
    groups = []
    ports = load_balanced_ports(settings)
    for value in values:
        arn, _, port = value.rpartition("=")
        try:
            groups += checked([TargetGroupPort(arn, int(port))])
        except ValueError:
            raise ConfigError([f"--ipv6-target-group: got {printable(repr(value))}, must be ARN=PORT such as "
                               "arn:aws:elasticloadbalancing:eu-west-3:123456789012:targetgroup/name/0123abcd=3478"]
                              ) from None
        _in_stack_region(arn, "--ipv6-target-group", settings)
        if int(port) not in ports:
            raise ConfigError([f"--ipv6-target-group: got port {port}, which this stack's load balancer does not "
                               f"send to; its target groups use {', '.join(map(str, sorted(ports)))}"])
    return tuple(groups)


def load_balanced_ports(settings: Settings) -> set[int]:
    """The instance ports the stack's target groups send to (the layout `pulumi up` builds)."""
    from stun_infra.cloud.components.endpoint import layout

    groups, _ = layout(settings.stun_port, settings.tls.ports, settings.tls.coturn_port,
                       settings.tls.ends_at_load_balancer)
    return {group.port for group in groups}


def _out_folder(path: str) -> Path:
    """--out names a folder: an empty one would mean the current directory, secret and key included."""
    if not path.strip():
        raise ConfigError([f"--out: got {printable(repr(path))}, must name a folder (it receives the TURN secret "
                           "and a private key), e.g. --out ./rendered"])
    return config_folder(Path(path), "--out")


def _parameter_version(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ConfigError([f"--parameter-version: got {value}, must be a parameter version, 1 or more"])
    return value


def _bucket(value: str) -> str:
    if not BUCKET_NAME.fullmatch(value):
        raise ConfigError([f"--bucket: got {printable(repr(value))}, must be an S3 bucket name without dots "
                           "(3-63 lower-case letters, digits and '-')"])
    return value


def _write(path: Path, text: str, mode: int) -> None:
    path.touch(mode=mode)
    path.chmod(mode)
    path.write_text(text)


def run(args: argparse.Namespace) -> int:
    try:
        settings = stack_settings(args)
    except ConfigError as e:
        return fail(str(e))
    try:
        _bucket(args.bucket)
        public_ip = _ipv4(args.public_ip, "--public-ip")
        private_ip = _ipv4(args.private_ip, "--private-ip")
        ipv6 = _ipv6(args.ipv6, "--ipv6", settings) if args.ipv6 else ""
        args.parameter_version = _parameter_version(args.parameter_version)
        certificate_arn = _certificate_arn(args.certificate_arn, settings)
        target_groups = _ipv6_target_groups(args.ipv6_target_group, settings)
        out = _out_folder(args.out)
        if args.turn_secret is not None:
            secret = turn_secret(args.turn_secret, "--turn-secret")
        elif os.environ.get(SECRET_ENV):
            secret = turn_secret(os.environ[SECRET_ENV], f"${SECRET_ENV}")
        else:
            secret = secrets.token_urlsafe(32)
    except ConfigError as e:
        return fail("; ".join(e.problems))  # about an argument: one line
    try:
        return write_files(args, settings, out, public_ip, private_ip, ipv6, secret, certificate_arn, target_groups)
    except OSError as e:
        return fail(f"--out {printable(str(out))}: cannot write there ({e.strerror or e})")


def write_files(args: argparse.Namespace, settings: Settings, out: Path, public_ip: str, private_ip: str,
                ipv6: str, secret: str, certificate_arn: str = "",
                target_groups: tuple[TargetGroupPort, ...] = ()) -> int:
    from stun_infra.client.turn_client import make_self_signed

    out.mkdir(parents=True, exist_ok=True)
    paths = INSTANCE_PATHS if args.instance_paths else local_paths(out)
    if not args.instance_paths:
        make_self_signed(out, settings.tls_domain)
    names = ParameterNames.under(settings.ssm_path, settings.turn, tls=not settings.tls.acm)
    if args.parameter_version:
        names = names.at(args.parameter_version, args.parameter_version, args.parameter_version)
    boot = BootInputs(parameters=names,
                      expected_public_ip="" if settings.autoscale else public_ip, certificate_arn=certificate_arn,
                      ipv6_target_groups=target_groups)
    package = instance_package.build(settings, boot)
    _write(out / "user-data.py", render_user_data(settings, args.bucket, package, boot.expected_public_ip), 0o755)
    (out / PACKAGE_FILE).write_bytes(package.data)
    _write(out / "stun-infra-configure", instance_package.configure_script(settings, boot), 0o755)
    _write(out / "turnserver.conf",
           turnserver_conf(settings, public_ip=public_ip, private_ip=private_ip, turn_secret="", paths=paths,
                           ipv6=ipv6, secret_store=True),
           0o600)
    if settings.turn and not args.instance_paths:  # on an instance the secret sync fills its own
        fill_store(paths.secret_db, settings.realm, secret)
    _write(out / "amazon-cloudwatch-agent.json", agent_config(settings), 0o644)
    print(f"wrote {out}/user-data.py, {PACKAGE_FILE} (SHA-256 {package.sha256}), stun-infra-configure, "
          "turnserver.conf, amazon-cloudwatch-agent.json"
          + ("" if args.instance_paths else ", cert.pem, key.pem" + (", turndb (the TURN secret)" if settings.turn else "")))
    print(f"try it: turnserver -c {out}/turnserver.conf")
    return 0
