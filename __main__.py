"""stun-infra: a coturn STUN/TURN fleet on AWS. Read settings, build the stack, export outputs."""

import pulumi

from stun_infra.settings import read_settings
from stun_infra.stack import build_stack

for name, value in build_stack(read_settings()).items():
    pulumi.export(name, value)
