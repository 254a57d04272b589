"""One module per command; each has add_parser(subparsers) and sets `run` on its parser."""

from stun_infra.commands import credentials, local, plan, probe, render

COMMANDS = [plan, render, local, probe, credentials]
