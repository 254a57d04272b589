"""The CLI over every side: one module per command; each has add_parser(subparsers) and
sets `run` on its parser. May import anything in stun_infra; nothing but `stun_infra.cli`
imports it. A new command is a module here, listed in COMMANDS."""

from stun_infra.commands import credentials, local, plan, probe, render, secret

COMMANDS = [plan, render, local, probe, credentials, secret]
