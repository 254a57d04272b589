"""One module per command; each has add_parser(subparsers) and sets `run` on its parser."""

from stun_infra.commands import plan, render

COMMANDS = [plan, render]
