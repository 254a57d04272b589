"""What the boot script downloads: only documented locations, each .deb verified before
dpkg sees it, every download retried with backoff within a bounded time. The functions are
run here in bash with the real gpgv and dpkg-deb; tests/boot runs them on a booting instance."""

from __future__ import annotations

import base64
import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from stun_infra.instance import downloads
from stun_infra.instance.downloads import AGENTS, CLOUDWATCH_AGENT, SSM_AGENT, SigningKey
from stun_infra.instance.boot_inputs import BootInputs, ParameterNames
from stun_infra.instance.package import BOOT_STOPPED_STATUS, configure_script as render_configure
from tests.conftest import MODES, REGION, TEST_BUCKET, configure_script, settings, user_data
from tests.support.signing import TestKey, build_deb, require_gpg


def hosts_in(script: str) -> set[str]:
    urls = re.findall(r"\bhttps?://([^/\"'\s]+)", script) + re.findall(r'"host":"([^"]+)"', script)
    return {m.replace("${REGION}", "{region}") for m in urls}


@pytest.mark.parametrize("mode", MODES)
def test_every_host_the_instance_fetches_from_is_documented(mode):
    fetched = hosts_in(configure_script(**MODES[mode])) | hosts_in(
        user_data(**MODES[mode]).replace(TEST_BUCKET, "{bucket}").replace(REGION, "{region}"))
    assert fetched == set(downloads.documented_hosts())


def test_each_documented_host_names_the_aws_page_that_documents_it():
    for host, page in downloads.documented_hosts().items():
        assert page.startswith("https://docs.aws.amazon.com/"), (host, page)


def test_cloudwatch_agent_comes_from_the_regional_bucket_aws_documents():
    script = configure_script()
    assert ('"https://amazoncloudwatch-agent-${REGION}.s3.${REGION}.amazonaws.com/debian/${ARCH}/latest/'
            'amazon-cloudwatch-agent.deb"') in script
    assert "amazoncloudwatch-agent.amazonaws.com" not in script


def test_ssm_agent_comes_from_the_regional_bucket_aws_documents():
    assert ('"https://s3.${REGION}.amazonaws.com/amazon-ssm-${REGION}/latest/debian_${ARCH}/amazon-ssm-agent.deb"'
            in configure_script())


def test_publisher_fingerprints_are_pinned_as_documented():
    assert CLOUDWATCH_AGENT.key.fingerprint == "937616F3450B7D806CBD9725D58167303B789C72"
    assert SSM_AGENT.key.fingerprint == "DE92C7DA3E56E92331D62A36BC1F495C97DD04ED"
    for agent in AGENTS:
        assert agent.key.fingerprint in configure_script()


def test_embedded_ssm_key_is_the_key_with_the_pinned_fingerprint(tmp_path):
    keyring = base64.b64decode(SSM_AGENT.key.keyring)
    assert downloads.primary_fingerprint(keyring) == SSM_AGENT.key.fingerprint
    require_gpg()
    (tmp_path / "ssm.gpg").write_bytes(keyring)
    shown = subprocess.run(["gpg", "--homedir", str(tmp_path), "--with-colons", "--show-keys", str(tmp_path / "ssm.gpg")],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    assert f"fpr:::::::::{SSM_AGENT.key.fingerprint}:" in shown


def test_an_embedded_key_with_another_fingerprint_is_refused():
    with pytest.raises(ValueError, match="expected 937616F3"):
        downloads.embedded_key(downloads.SSM_AGENT_KEY_ARMORED, CLOUDWATCH_AGENT.key.fingerprint)


def test_a_corrupted_armored_key_is_refused():
    armored = downloads.SSM_AGENT_KEY_ARMORED.replace("mQENBGTt", "mQENBGTu")
    with pytest.raises(ValueError, match="checksum"):
        downloads.dearmor(armored)


@pytest.mark.parametrize("fingerprint", ["937616f3450b7d806cbd9725d58167303b789c72", "3B789C72", "X" * 40])
def test_a_fingerprint_must_be_forty_upper_case_hex_digits(fingerprint):
    with pytest.raises(ValueError, match="40 upper-case hex digits"):
        SigningKey(fingerprint, url="https://example.invalid/key")


def test_a_key_comes_from_exactly_one_place():
    with pytest.raises(ValueError, match="exactly one"):
        SigningKey(CLOUDWATCH_AGENT.key.fingerprint)


def test_agents_are_verified_before_they_are_installed():
    script = configure_script()
    body = script[script.index("install_agent() {"):]
    assert body.index('problem="$(deb_problem') < body.index("apt-get -o DPkg::Lock::Timeout=300 install")
    assert "dpkg -i" not in script and " -L " not in script  # no redirect leads to another host


# -- the script's own functions, run in bash -------------------------------------------

FAKE_AWS = """#!/bin/bash
printf '%s\\n' "$*" >> "${AWS_LOG}"
"""


def functions(script: str) -> str:
    """The agents stage's functions, without the calls that install the agents."""
    return (script[script.index('LOG_GROUP="'):script.index("# coturn stays off")]
            + script[script.index('FETCH_ERROR=""'):script.index("\ninstall_agent amazon-cloudwatch-agent")])


def bash(tmp_path: Path, code: str, *, script: str | None = None, path_first: Path | None = None,
         arch: str = "amd64") -> subprocess.CompletedProcess:
    bin_dir = path_first or tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    aws = bin_dir / "aws"
    if not aws.exists():
        aws.write_text(FAKE_AWS)
        aws.chmod(0o755)
    prelude = (f"set -Eeuo pipefail\ntrap 'echo \"stun-infra: FAILED at line ${{LINENO}}\" >&2' ERR\n"
               f"INSTANCE_ID=i-0123456789abcdef0 REGION=eu-west-3 ARCH={arch}\n")
    return subprocess.run(["bash", "-c", prelude + functions(script or configure_script()) + "\n" + code],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "AWS_LOG": str(tmp_path / "aws.log")})


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A test key, the agent package it signed (amd64), and the key's binary keyring."""
    require_gpg()
    d = tmp_path_factory.mktemp("signed")
    key = TestKey(d / "gpg")
    deb = build_deb(d, "amazon-cloudwatch-agent", "amd64", {"/opt/aws/amazon-cloudwatch-agent/bin/x": "#!/bin/sh\n"})
    key.sign(deb)
    (d / "keyring").write_bytes(key.keyring)
    return key, deb, d / "keyring"


def deb_problem(tmp_path, signed, deb: Path, *, package: str = "amazon-cloudwatch-agent",
                fingerprint: str | None = None, arch: str = "amd64") -> str:
    key, _, keyring = signed
    r = bash(tmp_path, f'deb_problem {package} "{deb}" "{deb}.sig" "{keyring}" {fingerprint or key.fingerprint}',
             arch=arch)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return r.stdout.strip()


def test_a_signed_package_for_this_architecture_has_no_problem(tmp_path, signed):
    assert deb_problem(tmp_path, signed, signed[1]) == ""


def test_a_tampered_package_fails_its_signature(tmp_path, signed):
    key, deb, _ = signed
    tampered = tmp_path / deb.name
    tampered.write_bytes(deb.read_bytes()[:-1] + bytes([deb.read_bytes()[-1] ^ 1]))
    (tmp_path / (deb.name + ".sig")).write_bytes(deb.with_name(deb.name + ".sig").read_bytes())
    assert deb_problem(tmp_path, signed, tampered) == f"signature does not verify with key {key.fingerprint} (BADSIG)"


def test_a_truncated_package_fails_its_signature(tmp_path, signed):
    key, deb, _ = signed
    truncated = tmp_path / deb.name
    truncated.write_bytes(deb.read_bytes()[: deb.stat().st_size // 2])
    (tmp_path / (deb.name + ".sig")).write_bytes(deb.with_name(deb.name + ".sig").read_bytes())
    assert deb_problem(tmp_path, signed, truncated).startswith("signature does not verify")


def test_a_package_signed_by_another_key_fails(tmp_path, signed):
    other = TestKey(tmp_path / "other", name="someone else")
    deb = tmp_path / signed[1].name
    deb.write_bytes(signed[1].read_bytes())
    other.sign(deb)
    assert deb_problem(tmp_path, signed, deb) == \
        f"signature does not verify with key {signed[0].fingerprint} (ERRSIG)"


def test_a_good_signature_by_a_key_other_than_the_pinned_one_fails(tmp_path, signed):
    """The key file came with the download: only the pinned fingerprint makes it ours."""
    assert deb_problem(tmp_path, signed, signed[1], fingerprint=CLOUDWATCH_AGENT.key.fingerprint) == \
        f"signed by key {signed[0].fingerprint}, not by the pinned key {CLOUDWATCH_AGENT.key.fingerprint}"


def test_a_package_for_another_architecture_fails(tmp_path, signed):
    assert deb_problem(tmp_path, signed, signed[1], arch="arm64") == "package is for amd64, this instance is arm64"


def test_a_file_that_is_another_package_fails(tmp_path, signed):
    assert deb_problem(tmp_path, signed, signed[1], package="amazon-ssm-agent") == \
        "the file is package 'amazon-cloudwatch-agent'"


def test_boot_stopped_prints_one_line_copies_it_to_cloudwatch_logs_and_exits(tmp_path):
    r = bash(tmp_path, 'boot_stopped amazon-ssm-agent "download failed: HTTP 404 from https://x"; echo not-reached')
    line = ("stun-infra: BOOT STOPPED: amazon-ssm-agent: download failed: HTTP 404 from https://x "
            "(coturn stays disabled)")
    assert r.returncode == BOOT_STOPPED_STATUS and r.stderr.splitlines() == [line] and "not-reached" not in r.stdout
    create, put = (tmp_path / "aws.log").read_text().splitlines()
    group = "/stun-infra/test/coturn"
    assert create.startswith(f"logs create-log-stream --region eu-west-3 --log-group-name {group} "
                             "--log-stream-name i-0123456789abcdef0/boot")
    assert put.startswith(f"logs put-log-events --region eu-west-3 --log-group-name {group} "
                          "--log-stream-name i-0123456789abcdef0/boot --log-events ")
    assert f'"message": "{line}"' in put


# A stand-in for curl: answers from $CURL_ANSWERS, one "http_code:exit" per call.
FAKE_CURL = r"""#!/bin/bash
out="" url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift ;;
    https://*|http://*) url="$1" ;;
  esac
  shift
done
printf '%s\n' "${url}" >> "${CURL_LOG}"
n=$(wc -l < "${CURL_LOG}")
answer="$(sed -n "${n}p" "${CURL_ANSWERS}")"
code="${answer%%:*}" rc="${answer##*:}"
if [ "${rc}" != 0 ]; then echo "curl: (${rc}) transfer closed with 1234 bytes remaining to read" >&2; exit "${rc}"; fi
echo body > "${out}"
printf '%s' "${code}"
"""
FAKE_SLEEP = '#!/bin/bash\nprintf "%s\\n" "$1" >> "${SLEEP_LOG}"\n'


def fetch(tmp_path, answers: list[str], download_seconds: int = 300) -> tuple[subprocess.CompletedProcess, list, list]:
    s = settings()
    script = render_configure(s, BootInputs(ParameterNames.under(s.ssm_path, s.turn), expected_public_ip="203.0.113.5",
                                            download_seconds=download_seconds))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("curl", FAKE_CURL), ("sleep", FAKE_SLEEP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "answers").write_text("\n".join(answers) + "\n")
    code = (f"export CURL_LOG={tmp_path}/curl.log CURL_ANSWERS={tmp_path}/answers SLEEP_LOG={tmp_path}/sleep.log\n"
            f'if fetch https://example.invalid/a.deb "{tmp_path}/a.deb"; then echo ok; else echo "error: ${{FETCH_ERROR}}"; fi')
    r = bash(tmp_path, code, script=script, path_first=bin_dir)
    read = lambda name: (tmp_path / name).read_text().splitlines() if (tmp_path / name).exists() else []  # noqa: E731
    return r, read("curl.log"), read("sleep.log")


def test_a_download_that_fails_for_a_while_is_retried_with_backoff(tmp_path):
    r, calls, sleeps = fetch(tmp_path, ["503:0", "000:7", "000:18", "500:0", "200:0"])
    assert r.stdout.strip() == "ok" and len(calls) == 5
    assert sleeps == ["2", "4", "8", "16"]
    assert r.stderr.count("retrying in") == 4


def test_backoff_is_capped_at_thirty_seconds(tmp_path):
    r, calls, sleeps = fetch(tmp_path, ["503:0"] * 7 + ["200:0"])
    assert r.stdout.strip() == "ok" and sleeps == ["2", "4", "8", "16", "30", "30", "30"]


@pytest.mark.parametrize("code", ["404", "403"])
def test_a_missing_file_is_not_retried(tmp_path, code):
    r, calls, sleeps = fetch(tmp_path, [f"{code}:0"])
    assert r.stdout.strip() == f"error: HTTP {code} from https://example.invalid/a.deb"
    assert len(calls) == 1 and sleeps == []


def test_retries_stop_when_the_download_time_is_spent(tmp_path):
    r, calls, sleeps = fetch(tmp_path, ["000:18"] * 5, download_seconds=1)
    assert r.stdout.strip() == ("error: curl: (18) transfer closed with 1234 bytes remaining to read "
                                "from https://example.invalid/a.deb (1 attempts in 1 s)")
    assert len(calls) == 1 and sleeps == []


def test_every_download_is_bounded_by_the_download_time():
    script = configure_script()
    assert "deadline=$((SECONDS + 300))" in script
    assert '--max-time "$((left > 1 ? left : 1))"' in script
    assert "--proto '=https'" in script


def test_the_sandbox_key_replaces_only_the_keys(tmp_path):
    """What the boot sandbox runs differs from the production configure only in the keys."""
    require_gpg()
    key = TestKey(tmp_path / "gpg")
    s = settings()
    production = BootInputs(ParameterNames.under(s.ssm_path, s.turn), expected_public_ip="203.0.113.5")
    sandbox = dataclasses.replace(production, agents=key.in_place_of_aws(production.agents))
    a, b = render_configure(s, production).splitlines(), render_configure(s, sandbox).splitlines()
    changed = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b) and len(changed) == 2
    for agent, (x, y) in zip(AGENTS, changed):
        assert x.replace(agent.key.fingerprint, key.fingerprint).replace(agent.key.keyring, "") == \
            y.replace(base64.b64encode(key.keyring).decode(), "")
