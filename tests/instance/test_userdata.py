"""The user data: a few lines of python3 that fetch, check, install and configure."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stun_infra.cloud.components.artifact import BUCKET_NAME_LENGTH, BUCKET_PREFIX
from stun_infra.instance import package
from stun_infra.instance.userdata import MAX_USER_DATA_BYTES, packed, render_user_data, unpacked
from stun_infra.settings import known_regions, load_settings
from tests.conftest import MODES, REGION, TEST_BUCKET, boot_inputs, user_data

FETCH_SECONDS = 6  # the user data run here retries this long (production: userdata.FETCH_SECONDS)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "boot"))
from standin_servers import sigv4_problem  # noqa: E402  (botocore's signer, as the bucket stand-in checks)

@pytest.mark.parametrize("mode", MODES)
def test_user_data_is_at_most_2_kb_for_every_example_stack_and_mode(mode):
    assert len(user_data(**MODES[mode]).encode()) <= MAX_USER_DATA_BYTES


def test_user_data_is_at_most_2_kb_for_the_largest_legal_inputs():
    """Its size depends only on the bucket name (always BUCKET_NAME_LENGTH: S3 appends 26
    characters to BUCKET_PREFIX), the region, the digest (64 hex digits) and the Elastic
    IP: the longest of each, whatever the config."""
    _, boot = boot_inputs(dnsZoneId="Z0123456789ABCDEFGHIJ", dnsName="turn.example.com", sessionLogging="true")
    region = max((r for r, p in known_regions().items() if p == "aws"), key=len)  # every region it deploys to
    s = load_settings({"dnsZoneId": "Z0123456789ABCDEFGHIJ", "dnsName": "turn.example.com",
                       "sessionLogging": "true"}, stack="x" * 40, region=region)
    bucket = BUCKET_PREFIX + "9" * (BUCKET_NAME_LENGTH - len(BUCKET_PREFIX))
    text = render_user_data(s, bucket, package.build(s, boot), "255.255.255.255")
    assert len(bucket) == 37 and len(text.encode()) <= MAX_USER_DATA_BYTES, len(text.encode())


def test_user_data_past_2_kb_is_refused(monkeypatch):
    from stun_infra.instance import userdata

    monkeypatch.setattr(userdata, "MAX_USER_DATA_BYTES", 1024)
    s, boot = boot_inputs()
    with pytest.raises(ValueError, match="at most 1024"):
        userdata.render_user_data(s, TEST_BUCKET, package.build(s, boot))


@pytest.mark.parametrize("bucket, ip", [("Bad.Bucket", ""), ("ok-bucket-name", "203.0.113.5; rm -rf /"),
                                        ("a" * 64, ""), ("bucket\nimport os", "")])
def test_nothing_but_a_bucket_name_and_an_address_is_printed_into_the_script(bucket, ip):
    s, boot = boot_inputs()
    with pytest.raises(ValueError):
        render_user_data(s, bucket, package.build(s, boot), ip)


def test_user_data_names_the_package_by_its_digest_and_carries_no_secret():
    s, boot = boot_inputs()
    built = package.build(s, boot)
    text = render_user_data(s, TEST_BUCKET, built, "203.0.113.5")
    assert f'"{built.sha256}"' in text and f'"{TEST_BUCKET}.s3.{REGION}.amazonaws.com"' in text
    assert "turn-shared-secret" not in text and "BEGIN" not in text


def test_user_data_compiles_and_is_what_ec2_gets_in_base64():
    text = user_data()
    compile(text, "user-data", "exec")
    assert text.startswith("#!/usr/bin/python3\n")
    assert unpacked(packed(text)) == text and base64.b64decode(packed(text)) == text.encode()


class Fake:
    """IMDSv2 and the bucket on one loopback server, for the user data run for real."""

    SECRET, TOKEN, KEY_ID = "fake-secret", "fake-session-token", "ASIAFAKE"

    def __init__(self, serve: bytes | None):
        self.requests: list[dict] = []
        self.serve = serve
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                self._reply(200, b"imds-token")

            def do_GET(self) -> None:
                fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                creds = "/latest/meta-data/iam/security-credentials/"
                if self.path == creds:
                    return self._reply(200, b"the-role")
                if self.path == creds + "the-role":
                    return self._reply(200, json.dumps({"AccessKeyId": fake.KEY_ID, "SecretAccessKey": fake.SECRET,
                                                        "Token": fake.TOKEN}).encode())
                problem = sigv4_problem("GET", self.headers, self.path, fake.SECRET, fake.TOKEN)
                fake.requests[-1]["problem"] = problem
                if problem or fake.serve is None:
                    return self._reply(403 if problem else 404, problem.encode())
                self._reply(200, fake.serve)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run_user_data(tmp_path: Path, serve_tampered: bool = False, serve_none: bool = False):
    """The rendered user data, with IMDS and S3 pointed at a loopback fake (plain HTTP), apt
    and configure stand-ins that record their calls, /var/lib/stun-infra in tmp_path."""
    s, boot = boot_inputs(mode="autoscale")
    built = package.build(s, boot)
    text = render_user_data(s, TEST_BUCKET, built, fetch_seconds=FETCH_SECONDS)
    served = None if serve_none else built.data[:-1] + b"x" if serve_tampered else built.data
    fake = Fake(served)
    port = fake.server.server_address[1]
    root = tmp_path / "root"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("apt-get", "stun-infra-configure"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {tmp_path}/calls\n')
        (bin_dir / tool).chmod(0o755)
    text = (text.replace("http://169.254.169.254/", f"http://127.0.0.1:{port}/")
            .replace('get("https://"+h["host"]', f'get("http://127.0.0.1:{port}"')
            .replace('"/var/lib/stun-infra/"', f'"{root}/"')
            .replace("/usr/sbin/policy-rc.d", f"{tmp_path}/policy-rc.d")
            .replace(package.CONFIGURE_PATH, f"{bin_dir}/stun-infra-configure"))
    script = tmp_path / "user-data"
    script.write_text(text)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    fake.server.shutdown()
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return result, calls, fake, built


def test_user_data_fetches_with_a_signature_s3_accepts_checks_installs_and_configures(tmp_path):
    result, calls, fake, built = run_user_data(tmp_path)
    assert result.returncode == 0, result.stderr
    (get,) = [r for r in fake.requests if r["path"] == "/" + built.sha256]
    assert get["problem"] == "" and get["headers"]["host"] == f"{TEST_BUCKET}.s3.{REGION}.amazonaws.com"
    assert get["headers"]["x-amz-security-token"] == Fake.TOKEN
    assert calls[0] == "apt-get -qyo DPkg::Lock::Timeout=300 update"
    assert calls[1] == f"apt-get -qyo DPkg::Lock::Timeout=300 install --no-install-recommends {tmp_path}/root/p.deb"
    assert calls[2] == "stun-infra-configure "  # autoscale: no Elastic IP to wait for
    assert (tmp_path / "root" / built.sha256).read_bytes() == built.data
    assert not (tmp_path / "policy-rc.d").exists()


def test_user_data_with_the_package_installed_goes_straight_to_configure(tmp_path):
    run_user_data(tmp_path)
    (tmp_path / "calls").unlink()
    again, calls, fake, built = run_user_data(tmp_path)
    assert again.returncode == 0 and calls == ["stun-infra-configure "]
    assert not [r for r in fake.requests if r["path"] == "/" + built.sha256]


def test_a_package_whose_digest_does_not_match_stops_before_anything_is_installed(tmp_path):
    result, calls, fake, built = run_user_data(tmp_path, serve_tampered=True)
    assert result.returncode == 1 and calls == []
    tampered = hashlib.sha256(built.data[:-1] + b"x").hexdigest()
    assert result.stderr.strip() == f"stun-infra: BOOT STOPPED: {built.sha256}: SHA-256 is {tampered}"


def test_a_missing_package_stops_the_boot_once_its_time_is_spent(tmp_path):
    result, calls, fake, built = run_user_data(tmp_path, serve_none=True)
    assert result.returncode == 1 and calls == []
    assert result.stderr.strip() == f"stun-infra: BOOT STOPPED: {built.sha256}: download: HTTP Error 404: Not Found"
    assert len([r for r in fake.requests if r["path"] == "/" + built.sha256]) >= 2  # retried first
