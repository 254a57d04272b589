"""TURN secret rotation on the instance: coturn accepts exactly the secrets Parameter Store holds.

coturn 4.6.1 with `use-auth-secret` and no `static-auth-secret` takes the realm's REST
secrets from its SQLite store (`userdb=`), read on every new authentication: several at
once, changed without a restart (checked against the real server in
tests/instance/coturn/test_secret_rotation.py). templates/stun-secret-sync.py.j2 reads the
stack's current secret and, during a rotation, the previous one (one GetParameters call,
retried a bounded number of times) and sets exactly those in the store. A timer runs it
every SYNC_INTERVAL_SECONDS, so a rotation step reaches every instance by itself within
PICKUP_SECONDS of `pulumi up` changing the parameters; nothing in the launch template
depends on the secrets' values or versions.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stun_infra.instance.stage import InstanceFile, Stage
from stun_infra.instance.templating import render
from stun_infra.settings import Settings

if TYPE_CHECKING:
    from stun_infra.instance.boot_inputs import BootInputs

SCRIPT_PATH = "/usr/local/sbin/stun-secret-sync"
ENV_PATH = "/etc/stun-infra/secret-sync.env"  # the timer's STUN_SECRET_SYNC_REGION
USER = "turnserver"                   # runs as coturn's user (Debian's unit), who owns the store
DATABASE = "/var/lib/turn/turndb"     # Debian's coturn store, owned by turnserver
SYNC_INTERVAL_SECONDS = 60
ATTEMPTS = 4                          # reads per run: 2 s, 4 s, 8 s apart
FIRST_DELAY_SECONDS = 2
AWS_TIMEOUT_SECONDS = 20
MAX_SECRET = 256                      # coturn's turn_secret.value is varchar(256)
# The worst case for one step to reach an instance: the timer's interval, then a run whose
# reads all time out, then the next run.
PICKUP_SECONDS = (SYNC_INTERVAL_SECONDS + ATTEMPTS * AWS_TIMEOUT_SECONDS
                  + FIRST_DELAY_SECONDS * (2 ** (ATTEMPTS - 1) - 1) + SYNC_INTERVAL_SECONDS)
UNITS = ("stun-secret-sync.service", "stun-secret-sync.timer")
TIMER = UNITS[1]


@dataclass(frozen=True)
class SecretParameters:
    """The Parameter Store names of the current secret and of the previous one (present only
    during a rotation)."""

    current: str
    previous: str

    @classmethod
    def under(cls, path: str) -> "SecretParameters":
        return cls(current=f"{path}/turn-shared-secret", previous=f"{path}/turn-shared-secret-previous")


def script(parameters: SecretParameters, realm: str, database: str = DATABASE,
           attempts: int = ATTEMPTS, first_delay: int = FIRST_DELAY_SECONDS) -> str:
    """The sync program; `database`, `attempts` and `first_delay` differ only in tests."""
    return render("stun-secret-sync.py.j2", current=parameters.current, previous=parameters.previous,
                  realm=realm, database=database, attempts=attempts, first_delay=first_delay,
                  aws_timeout=AWS_TIMEOUT_SECONDS, max_secret=MAX_SECRET)


def units() -> dict[str, str]:
    """The timer and the service it runs, as coturn's user."""
    return {unit: render(f"{unit}.j2", script_path=SCRIPT_PATH, env_path=ENV_PATH, user=USER,
                         interval=SYNC_INTERVAL_SECONDS) for unit in UNITS}


def stage(settings: Settings, boot: "BootInputs") -> Stage | None:
    """`secret-sync` (TURN only): the program and its timer in the package; on the instance, its
    region for the timer and a first run before coturn starts (the boot stops if no secret
    could be stored: coturn would refuse every allocation)."""
    if not settings.turn:
        return None
    return Stage(
        "secret-sync",
        files=(InstanceFile(SCRIPT_PATH, script(SecretParameters.under(settings.ssm_path), settings.realm),
                            mode=0o755),),
        units=units(), enable=(TIMER,),
        script=render("stages/secret-sync.sh.j2", script_path=SCRIPT_PATH, env_path=ENV_PATH, user=USER,
                      database=DATABASE, interval=SYNC_INTERVAL_SECONDS))


def fill_store(database: str, realm: str, current: str, previous: str = "") -> None:
    """Set `current` (and `previous`) as the realm's secrets in the store at `database`, with
    the instance's own program (`--stdin`): what `render` and `local` give a coturn here."""
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "stun-secret-sync"
        program.write_text(script(SecretParameters.under("/local"), realm, database=database))
        done = subprocess.run([sys.executable, str(program), "--stdin"], input="\n".join(filter(None, (current, previous))),
                              capture_output=True, text=True, timeout=AWS_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise ValueError(f"the TURN secret store {database} was not written: {done.stdout.strip()}")
