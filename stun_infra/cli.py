"""`stun-infra`: the project's commands. Each lives in stun_infra/commands/ and adds its own parser."""

from __future__ import annotations

import argparse
import sys

from stun_infra.commands import COMMANDS


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="stun-infra", description=__doc__.split(":", 1)[1].strip())
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `stun-infra plan | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
