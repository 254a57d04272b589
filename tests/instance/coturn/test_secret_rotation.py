"""TURN secret rotation with the real coturn 4.6.1: the rendered config with the secret store,
the real sync program (templates/stun-secret-sync.py.j2) against a stand-in Parameter Store,
and allocations made, refreshed and relayed through by a real TURN client, all inside a
throwaway network namespace.

A rotation in Parameter Store terms: (a) `turn-shared-secret` becomes the new secret and
`turn-shared-secret-previous` holds the old one; (c) `turn-shared-secret-previous` is deleted.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stun_infra.client.credentials import mint
from stun_infra.client.turn_client import StunError, allocate, turn_allocation
from stun_infra.instance import secret_sync

from tests.support.coturn import CoturnServer, _Echo, rejected_lines, running_coturn, settings_for
from tests.support.netns import PEER_IPV4, SERVER_IPV4, NetNs
from tests.support.ssm_standin import SsmStandIn

pytestmark = pytest.mark.coturn

PARAMETERS = secret_sync.SecretParameters.under("/stun-infra/test")


class Rotation:
    """A coturn reading its secrets from the store, and the sync program filling it."""

    def __init__(self, server: CoturnServer, ssm: SsmStandIn, program: Path):
        self.server, self.ssm, self.program = server, ssm, program

    def sync(self) -> None:
        done = self.ssm.run(self.program, "--region", "eu-west-3")
        assert done.returncode == 0, done.stdout + done.stderr

    def begin(self, current: str) -> None:
        """No rotation under way: one secret."""
        self.ssm.put(PARAMETERS.current, current)
        self.ssm.delete(PARAMETERS.previous)
        self.sync()

    def rotate(self, new: str) -> None:
        """Step (a): the new secret is current, the old one previous."""
        self.ssm.put(PARAMETERS.previous, self.ssm.parameters[PARAMETERS.current])
        self.ssm.put(PARAMETERS.current, new)
        self.sync()

    def finish(self) -> None:
        """Step (c): the previous secret is retired."""
        self.ssm.delete(PARAMETERS.previous)
        self.sync()

    def allocate_code(self, secret: str) -> int | None:
        """ALLOCATE (then release) with credentials minted from `secret`: None or the error code."""
        try:
            self.server.ns.run_async(allocate, self.server.stun_address, *credentials(secret), timeout=2)
        except StunError as exc:
            return exc.code
        return None


def credentials(secret: str) -> tuple[str, str]:
    return mint(secret, ttl_seconds=600, user=f"rotation-{secrets.token_hex(4)}")


def fresh_secret() -> str:
    return secrets.token_urlsafe(36)


@pytest.fixture(scope="module")
def rotation(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotation]:
    workdir = tmp_path_factory.mktemp("rotation")
    settings = settings_for()
    ssm = SsmStandIn(workdir / "standin")
    program = workdir / "stun-secret-sync"
    program.write_text(secret_sync.script(PARAMETERS, settings.realm, database=str(workdir / "turndb"),
                                          first_delay=0))
    ssm.put(PARAMETERS.current, fresh_secret())
    done = ssm.run(program, "--region", "eu-west-3")  # before coturn starts, as at boot
    assert done.returncode == 0, done.stdout + done.stderr
    with running_coturn(netns, workdir, settings) as server:
        assert server.paths.secret_db == str(workdir / "turndb")
        yield Rotation(server, ssm, program)


@pytest.fixture
def fresh(rotation: Rotation) -> Rotation:
    """Each test starts outside a rotation, with a secret of its own."""
    rotation.begin(fresh_secret())
    return rotation


def test_startup_log_has_no_rejected_line_with_the_secret_store(rotation: Rotation):
    assert rejected_lines(rotation.server.boot_log) == []
    assert "static-auth-secret" not in rotation.server.conf
    assert f"userdb={rotation.server.paths.secret_db}" in rotation.server.conf.splitlines()


def test_the_current_secret_allocates(fresh: Rotation):
    assert fresh.allocate_code(fresh.ssm.parameters[PARAMETERS.current]) is None


def test_a_secret_parameter_store_does_not_hold_is_refused(fresh: Rotation):
    assert fresh.allocate_code(fresh_secret()) == 401


def test_both_secrets_allocate_during_a_rotation(fresh: Rotation):
    old, new = fresh.ssm.parameters[PARAMETERS.current], fresh_secret()
    fresh.rotate(new)
    assert (fresh.allocate_code(old), fresh.allocate_code(new)) == (None, None)


def test_a_new_secret_is_accepted_from_the_next_sync_on_without_a_restart(fresh: Rotation):
    new = fresh_secret()
    fresh.ssm.put(PARAMETERS.previous, fresh.ssm.parameters[PARAMETERS.current])
    fresh.ssm.put(PARAMETERS.current, new)
    assert fresh.allocate_code(new) == 401  # not synced yet: the store decides, not Parameter Store
    fresh.sync()
    assert fresh.allocate_code(new) is None
    assert fresh.server.process.poll() is None  # the same process throughout


def test_the_retired_secret_is_refused_after_the_finish_step(fresh: Rotation):
    old = fresh.ssm.parameters[PARAMETERS.current]
    fresh.rotate(fresh_secret())
    fresh.finish()
    assert fresh.allocate_code(old) == 401


def test_the_new_secret_keeps_allocating_after_the_finish_step(fresh: Rotation):
    new = fresh_secret()
    fresh.rotate(new)
    fresh.finish()
    assert fresh.allocate_code(new) is None


def relay_through_rotation(rotation: Rotation, secret: str, steps: list) -> list[tuple[int | None, bytes]]:
    """One allocation made with `secret`, held while each step runs; after each step (and
    before the first) a REFRESH and a datagram relayed to a peer and back."""
    async def go() -> list[tuple[int | None, bytes]]:
        loop = asyncio.get_running_loop()
        echo_transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=(PEER_IPV4, 0))
        peer = echo_transport.get_extra_info("sockname")[:2]
        seen = []
        try:
            async with turn_allocation(rotation.server.stun_address, *credentials(secret), timeout=2) as relay:
                for step in [None, *steps]:
                    if step is not None:
                        await asyncio.to_thread(step)
                    refreshed = await relay.refresh()
                    payload = secrets.token_bytes(16)
                    await relay.send(payload, peer)
                    data, _ = await relay.receive()
                    seen.append((refreshed, data if data == payload else b"wrong payload"))
        finally:
            echo_transport.close()
        return [(code, b"ok" if data != b"wrong payload" else data) for code, data in seen]
    return rotation.server.ns.run_async(go, deadline=60)


def test_an_allocation_made_with_the_old_secret_refreshes_and_relays_through_the_overlap(fresh: Rotation):
    old = fresh.ssm.parameters[PARAMETERS.current]
    results = relay_through_rotation(fresh, old, [lambda: fresh.rotate(fresh_secret())])
    assert results == [(None, b"ok"), (None, b"ok")]


def test_a_live_relayed_session_survives_the_whole_rotation(fresh: Rotation):
    old = fresh.ssm.parameters[PARAMETERS.current]
    results = relay_through_rotation(fresh, old, [lambda: fresh.rotate(fresh_secret()), fresh.finish])
    assert results == [(None, b"ok"), (None, b"ok"), (None, b"ok")]


def test_the_store_the_sync_writes_is_the_one_turnadmin_reads(fresh: Rotation):
    old, new = fresh.ssm.parameters[PARAMETERS.current], fresh_secret()
    fresh.rotate(new)
    shown = subprocess.run(["turnadmin", "-S", "-r", fresh.server.settings.realm, "-b",
                            fresh.server.paths.secret_db], capture_output=True, text=True, timeout=10)
    realm = fresh.server.settings.realm
    listed = {line.removesuffix(f"[{realm}]") for line in shown.stdout.splitlines() if line.endswith(f"[{realm}]")}
    assert listed == {old, new}


def test_a_secret_turnadmin_adds_is_accepted_and_one_it_deletes_is_refused(fresh: Rotation):
    """The mechanism itself, without the sync: turnadmin -s / -X on a running server."""
    added = fresh_secret()
    admin = ["turnadmin", "-r", fresh.server.settings.realm, "-b", fresh.server.paths.secret_db]
    subprocess.run([*admin, "-s", added], check=True, capture_output=True, timeout=10)
    assert fresh.allocate_code(added) is None
    subprocess.run([*admin, "-X", added], check=True, capture_output=True, timeout=10)
    assert fresh.allocate_code(added) == 401


def test_new_allocations_succeed_while_the_store_is_being_written(fresh: Rotation):
    """coturn answers a read that finds the store locked with 401 (it does not wait). The store
    as the sync leaves it (a WAL journal) is written here as fast as SQLite allows, in the
    journal mode the file carries, while clients allocate: none is refused. With the default
    journal, 75 of 80 allocations were refused in the same run."""
    current = fresh.ssm.parameters[PARAMETERS.current]
    done, wrote = threading.Event(), threading.Condition()
    writes = [0]

    def write_until_done() -> None:
        db = sqlite3.connect(fresh.server.paths.secret_db, timeout=10, isolation_level=None)
        try:
            while not done.is_set():
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM turn_secret WHERE realm = 'other.realm'")
                db.execute("INSERT INTO turn_secret (realm, value) VALUES ('other.realm', ?)", (fresh_secret(),))
                db.execute("COMMIT")
                with wrote:
                    writes[0] += 1
                    wrote.notify_all()
        finally:
            db.close()

    writer = threading.Thread(target=write_until_done)
    writer.start()
    codes = []
    try:
        for _ in range(30):
            with wrote:  # each allocation while writes go on
                seen = writes[0]
                assert wrote.wait_for(lambda: writes[0] > seen, timeout=30)
            codes.append(fresh.allocate_code(current))
    finally:
        done.set()
        writer.join(timeout=30)
    assert writes[0] > 30
    assert codes == [None] * 30
