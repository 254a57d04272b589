"""Reading the instance package a run stores: its members, as dpkg would unpack them."""

from __future__ import annotations

import base64
import io
import tarfile

PACKAGE_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
CONFIGURE = "/usr/sbin/stun-infra-configure"


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a System V ar archive (deb(5))."""
    assert data[:8] == b"!<arch>\n", "not an ar archive"
    out, at = {}, 8
    while at < len(data):
        header = data[at:at + 60]
        name, size = header[:16].decode().strip(), int(header[48:58])
        out[name] = data[at + 60:at + 60 + size]
        at += 60 + size + size % 2
    return out


def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def files_of(deb: bytes) -> dict[str, str]:
    """Path -> text of every file the package installs."""
    data = ar_members(deb)["data.tar"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {"/" + m.name.removeprefix("./"): tar.extractfile(m).read().decode() for m in tar.getmembers()
                if m.isfile()}


def stored_package(run) -> tuple[str, bytes]:  # noqa: ANN001
    """(key, bytes) of the one package object the run stores."""
    (obj,) = run.of_type(PACKAGE_OBJECT)
    return obj.inputs["key"], base64.b64decode(obj.inputs["contentBase64"])


def configure_of(run) -> str:  # noqa: ANN001
    """stun-infra-configure as the run's package ships it."""
    return files_of(stored_package(run)[1])[CONFIGURE]
