"""Headless Chromium inside a test's network namespace, trusting a test CA.

Chromium on Linux reads user trust from the NSS database `~/.pki/nssdb`; the test makes
one in a fresh HOME with `certutil` and adds its CA. The page (turns_page.html) is
served from inside the namespace by an HTTP server whose socket is created there; it
reports once, by POST /result, which the test waits for (bounded). Chromium runs in a
session of its own and is killed by its process group id afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.coturn import require
from tests.support.netns import NetNs

PAGE = Path(__file__).resolve().parent / "turns_page.html"
PAGE_HOST, PAGE_PORT = "127.0.0.1", 8480  # loopback inside the namespace: a secure context
RESULT_DEADLINE = 40.0  # seconds for the page to report (it gives up itself after 20)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-features=WebRtcHideLocalIpsWithMdns")


def require_browser() -> None:
    require("browser", (
        (shutil.which("chromium"), "chromium is not installed (apt-get install chromium)"),
        (shutil.which("certutil"), "certutil is not installed (apt-get install libnss3-tools)"),
        (shutil.which("stunnel4"), "stunnel4 is not installed (apt-get install stunnel4)"),
    ))


def home_trusting(home: Path, ca_pem: str) -> Path:
    """A fresh HOME whose NSS database trusts `ca_pem` for TLS servers."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    (home / "ca.pem").write_text(ca_pem)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True,
                   capture_output=True, timeout=30)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "stun-infra test CA",
                    "-i", str(home / "ca.pem")], check=True, capture_output=True, timeout=30)
    return home


class _PageServer:
    """Serves the page and /ice; keeps the first POST /result."""

    def __init__(self, ns: NetNs, ice_server: dict[str, Any]):
        self.result: dict[str, Any] | None = None
        self.reported = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = PAGE.read_bytes() if self.path == "/" else json.dumps(ice_server).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if self.path == "/" else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if outer.result is None:
                    outer.result = json.loads(data)
                    outer.reported.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        # The listening socket is made on the namespace's thread, so it lives there.
        self.httpd = ns.run(lambda: ThreadingHTTPServer((PAGE_HOST, PAGE_PORT), Handler))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def relay_check(ns: NetNs, ice_server: dict[str, Any], home: Path, host_map: dict[str, str]) -> dict[str, Any]:
    """Open the page in headless Chromium inside `ns` with `ice_server` as the only ICE
    server; return what it reported (relay candidates, errors, message)."""
    server = _PageServer(ns, ice_server)
    rules = ", ".join(f"MAP {name} {address}" for name, address in host_map.items())
    log = (home / "chromium.log").open("wb")
    browser = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, "chromium", *CHROMIUM_FLAGS, f"--user-data-dir={home / 'profile'}",
         f"--host-resolver-rules={rules}", f"http://{PAGE_HOST}:{PAGE_PORT}/"],
        env={**os.environ, "HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        if not server.reported.wait(RESULT_DEADLINE):
            tail = (home / "chromium.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"the page did not report within {RESULT_DEADLINE}s; chromium log:\n{tail}")
        assert server.result is not None
        return server.result
    finally:
        try:
            os.killpg(browser.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        browser.wait(timeout=10)
        log.close()
        server.close()
