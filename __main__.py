"""stun-infra: a coturn STUN/TURN fleet on AWS. Read settings, build the stack, export outputs."""

import pulumi

from stun_infra.cloud.config import read_settings
from stun_infra.cloud.stack import build_stack
from stun_infra.settings import ConfigError

try:
    outputs = build_stack(read_settings())
except ConfigError as error:  # a clear message, no traceback, nothing created
    raise pulumi.RunError(str(error)) from None
for name, value in outputs.items():
    pulumi.export(name, value)
