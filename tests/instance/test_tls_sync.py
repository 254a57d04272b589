"""The static-mode certificate sync (templates/stun-tls-sync.sh.j2), run for real by bash
against a fake `aws` that answers ExportCertificate as ACM does (certificate, chain, and
the key encrypted with the passphrase the script chose), on a PATH without `systemctl`: what
it asks systemd (reload a running coturn, only when the certificate changed) runs on the
booted machine in tests/boot/test_boot_acm.py."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stun_infra.instance import tls_sync
from stun_infra.instance.coturn import local_paths

from tests.conftest import TEST_CERTIFICATE_ARN
from tests.support.certs import make_ca
from tests.support.systemd import verify_units

CA = make_ca()

FAKE_AWS = r'''#!{python}
"""aws acm export-certificate, as ACM answers it; records its argv."""
import json, os, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
state = Path(os.environ["FAKE_STATE"])
with (state / "aws-calls.jsonl").open("a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
passphrase = Path(args[args.index("--passphrase") + 1].removeprefix("fileb://")).read_bytes()
key = serialization.load_pem_private_key((state / "key.pem").read_bytes(), password=None)
print(json.dumps({{
    "Certificate": (state / "cert.pem").read_text(),
    "CertificateChain": (state / "chain.pem").read_text(),
    "PrivateKey": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(passphrase)).decode(),
}}))
'''

# What the script runs besides bash's builtins and `aws`; `systemctl` is not among them.
TOOLS = ("cut", "mktemp", "rm", "head", "base64", "python3", "openssl", "cmp", "install", "dirname", "mv", "tr")


@pytest.fixture
def box(tmp_path: Path) -> dict:
    state, bin_dir, tls = tmp_path / "state", tmp_path / "bin", tmp_path / "tls"
    for d in (state, bin_dir):
        d.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS.format(python=sys.executable))
    (bin_dir / "aws").chmod(0o755)
    for tool in TOOLS:  # the interpreter itself, not a wrapper (pyenv's shims run `env bash`)
        (bin_dir / tool).symlink_to(os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool))
    assert shutil.which("systemctl", path=str(bin_dir)) is None
    paths = local_paths(tls)
    script = tmp_path / "stun-tls-sync"
    user = getpass.getuser()
    script.write_text(tls_sync.script(TEST_CERTIFICATE_ARN, paths, owner=user))
    script.chmod(0o755)
    return {"state": state, "bin": bin_dir, "paths": paths, "script": script}


def acm_holds(box: dict, name: str = "turn.example.com", key_of=None) -> str:
    """What ACM would export next: a certificate from the CA (and, to test a mismatch, another key)."""
    issued = CA.issue(name)
    (box["state"] / "cert.pem").write_text(issued.cert_pem)
    (box["state"] / "chain.pem").write_text(CA.cert_pem)
    (box["state"] / "key.pem").write_text(key_of.key_pem if key_of else issued.key_pem)
    return issued.cert_pem


def sync(box: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": str(box["bin"]), "FAKE_STATE": str(box["state"])}
    return subprocess.run([shutil.which("bash"), str(box["script"])], env=env, capture_output=True, text=True, timeout=60)


def test_the_exported_certificate_chain_and_decrypted_key_are_installed(box):
    cert = acm_holds(box)
    done = sync(box)
    assert done.returncode == 0, done.stderr
    assert Path(box["paths"].cert).read_text() == cert.strip() + "\n" + CA.cert_pem.strip() + "\n"
    key = serialization.load_pem_private_key(Path(box["paths"].key).read_bytes(), password=None)  # unencrypted
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == \
        x509.load_pem_x509_certificate(cert.encode()).public_key().public_bytes(*spki)
    assert stat.S_IMODE(os.stat(box["paths"].key).st_mode) == 0o600


def test_an_unchanged_certificate_changes_nothing(box):
    acm_holds(box)
    sync(box)
    before = Path(box["paths"].cert).stat().st_mtime_ns
    done = sync(box)
    assert "certificate unchanged" in done.stdout
    assert Path(box["paths"].cert).stat().st_mtime_ns == before


def test_a_renewed_certificate_replaces_the_old_one(box):
    acm_holds(box)
    sync(box)
    renewed = acm_holds(box)
    assert sync(box).returncode == 0
    assert Path(box["paths"].cert).read_text().startswith(renewed.strip())


def test_a_key_that_is_not_the_certificates_is_refused_and_nothing_is_installed(box):
    acm_holds(box, key_of=CA.issue("other.example.com"))
    done = sync(box)
    assert done.returncode == 1 and "does not match" in done.stderr
    assert not Path(box["paths"].cert).exists() and not Path(box["paths"].key).exists()


def test_the_passphrase_travels_in_a_file_never_on_the_command_line(box):
    acm_holds(box)
    sync(box)
    (call,) = [json.loads(line) for line in (box["state"] / "aws-calls.jsonl").read_text().splitlines()]
    assert call[:2] == ["acm", "export-certificate"]
    assert call[call.index("--passphrase") + 1].startswith("fileb://")
    assert call[call.index("--certificate-arn") + 1] == TEST_CERTIFICATE_ARN
    assert call[call.index("--region") + 1] == "eu-west-3"


def test_the_decrypted_key_passes_through_a_temporary_folder_of_valid_units(tmp_path):
    """A folder in the unit's /tmp, which systemd makes private to it (PrivateTmp=, as the
    booted machine's systemd says in tests/boot/test_boot_acm.py) and removes with it."""
    assert 'WORK="$(mktemp -d)"' in tls_sync.script(TEST_CERTIFICATE_ARN)
    assert verify_units(tmp_path, tls_sync.systemd_units("/bin/true")) == ""
