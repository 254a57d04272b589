"""A stand-in `aws` for `aws ssm get-parameters`: answers from a folder as Parameter Store
would (found parameters in `Parameters`, missing names in `InvalidParameters`), fails the
next N calls on request, and records each call's arguments (never a value)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FAKE_AWS = r'''#!{python}
import json, os, sys
from pathlib import Path
state = Path(os.environ["SSM_STANDIN"])
with (state / "calls.jsonl").open("a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
failures = state / "failures"
left = int(failures.read_text()) if failures.exists() else 0
if left:
    failures.write_text(str(left - 1))
    print("An error occurred (ThrottlingException) when calling the GetParameters operation: Rate exceeded",
          file=sys.stderr)
    sys.exit(254)
args = sys.argv[1:]
names = args[args.index("--names") + 1:args.index("--output")]
store = json.loads((state / "parameters.json").read_text())
print(json.dumps({{"Parameters": [{{"Name": n, "Type": "SecureString", "Value": store[n], "Version": 1}}
                                  for n in names if n in store],
                  "InvalidParameters": [n for n in names if n not in store]}}))
'''


class SsmStandIn:
    """Parameters live in `folder/parameters.json`; `bin` goes first on PATH."""

    def __init__(self, folder: Path):
        self.state = folder / "ssm"
        self.bin = folder / "bin"
        self.state.mkdir(parents=True)
        self.bin.mkdir(parents=True)
        aws = self.bin / "aws"
        aws.write_text(FAKE_AWS.format(python=sys.executable))
        aws.chmod(0o755)
        self._write({})

    def _write(self, parameters: dict[str, str]) -> None:
        (self.state / "parameters.json").write_text(json.dumps(parameters))

    @property
    def parameters(self) -> dict[str, str]:
        return json.loads((self.state / "parameters.json").read_text())

    def put(self, name: str, value: str) -> None:
        self._write({**self.parameters, name: value})

    def delete(self, name: str) -> None:
        self._write({k: v for k, v in self.parameters.items() if k != name})

    def fail_next(self, calls: int) -> None:
        (self.state / "failures").write_text(str(calls))

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "SSM_STANDIN": str(self.state)}

    def run(self, program: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The program with this stand-in first on PATH."""
        return subprocess.run([sys.executable, str(program), *args], capture_output=True, text=True,
                              env=self.environment(), timeout=timeout)
