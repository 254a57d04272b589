"""The instance package: reproducible bytes, a .deb dpkg reads, nothing per instance in it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest

from stun_infra.instance import package
from stun_infra.instance.stage import UNIT_DIR
from tests.conftest import MODES, boot_inputs
from tests.support.debs import ar_members, files_of, tar_members


@pytest.mark.parametrize("mode", MODES)
def test_two_builds_of_the_same_inputs_are_the_same_bytes(mode):
    s, boot = boot_inputs(**MODES[mode])
    first, second = package.build(s, boot), package.build(s, boot)
    assert first.data == second.data and first.sha256 == second.sha256


def test_the_digest_changes_with_what_the_instance_runs():
    s, boot = boot_inputs()
    other = dataclasses.replace(boot, parameters=boot.parameters.at(7, 7, 7))
    assert package.build(s, boot).sha256 != package.build(s, other).sha256


def test_the_elastic_ip_is_not_in_the_package():
    """Every static instance of a stack gets the same package; its address is in its user data."""
    s, boot = boot_inputs()
    assert package.build(s, boot).data == package.build(s, dataclasses.replace(boot, expected_public_ip="")).data


def test_every_member_is_roots_with_a_fixed_time_in_path_order():
    s, boot = boot_inputs()
    members = ar_members(package.build(s, boot).data)
    assert list(members) == ["debian-binary", "control.tar", "data.tar"] and members["debian-binary"] == b"2.0\n"
    for tarball in ("control.tar", "data.tar"):
        infos = list(tar_members(members[tarball]).values())
        assert all(i.uid == 0 and i.gid == 0 and i.uname == "root" and i.gname == "root" for i in infos)
        assert {i.mtime for i in infos} == {package.MTIME}
    files = [i.name for i in tar_members(members["data.tar"]).values() if i.isfile()]
    assert files == sorted(files)


def test_programs_are_executable_and_nothing_else_is():
    s, boot = boot_inputs(mode="autoscale")
    infos = {i.name.removeprefix("."): i for i in tar_members(ar_members(package.build(s, boot).data)["data.tar"]).values()
             if i.isfile()}
    executable = {name for name, i in infos.items() if i.mode & 0o111}
    assert executable == {package.CONFIGURE_PATH, "/usr/local/sbin/stun-drain", "/usr/local/sbin/stun-metrics-reporter",
                          "/usr/local/sbin/stun-secret-sync", "/usr/local/sbin/stun-nft-guard",
                          "/usr/local/sbin/stun-boot-failed"}
    assert all(i.mode in (0o644, 0o755) for i in infos.values())


def test_the_control_file_names_the_package_its_version_and_debians_dependencies():
    s, boot = boot_inputs()
    built = package.build(s, boot)
    control = tar_members(ar_members(built.data)["control.tar"])
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(ar_members(built.data)["control.tar"])) as tar:
        text = tar.extractfile(control["./control"]).read().decode()
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith(" "))
    assert fields["Package"] == package.NAME and fields["Architecture"] == "all"
    assert fields["Version"] == built.version and fields["Depends"] == ", ".join(package.DEPENDS)


def test_the_package_ships_configure_its_unit_and_every_stages_files():
    s, boot = boot_inputs()
    files = files_of(package.build(s, boot).data)
    assert files[package.CONFIGURE_PATH] == package.configure_script(s, boot)
    unit = files[f"{UNIT_DIR}/stun-infra-configure.service"]
    assert f"ExecStart={package.CONFIGURE_PATH}\n" in unit and "Before=coturn.service" in unit
    assert "WantedBy=multi-user.target" in unit and "Type=oneshot" in unit
    assert files == {f.path: f.text for f in package.instance_files(s, boot)}


def test_dpkg_reads_the_package(tmp_path):
    if not shutil.which("dpkg-deb"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have dpkg-deb")
        pytest.skip("dpkg-deb is not installed (the package is built without it; this only reads it)")
    s, boot = boot_inputs(mode="autoscale")
    built = package.build(s, boot)
    deb = tmp_path / "p.deb"
    deb.write_bytes(built.data)
    assert subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Version", "Architecture"], capture_output=True,
                          text=True, check=True).stdout.splitlines() == [
        f"Package: {package.NAME}", f"Version: {built.version}", "Architecture: all"]
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(tmp_path / "root")], check=True)
    assert (tmp_path / "root" / package.CONFIGURE_PATH.lstrip("/")).read_text() == package.configure_script(s, boot)
