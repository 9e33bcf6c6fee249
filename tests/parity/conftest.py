# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the parity suite: the agent binary, HAProxy, and one stub app.

Run from the source root with Debian's Python (it has pytest):
    /usr/bin/python3 -m pytest tests/parity -q -s
CUTOVER_SPOA picks another agent binary (default build/cutover-spoa),
HAPROXY another HAProxy (default haproxy on PATH).
"""
import http.server
import os
import shutil
import socketserver
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def agent_binary():
    path = os.environ.get("CUTOVER_SPOA", os.path.join(ROOT, "build", "cutover-spoa"))
    assert os.access(path, os.X_OK), "%s: build the agent first (cmake --build build)" % path
    return path


@pytest.fixture(scope="session")
def haproxy_binary():
    path = os.environ.get("HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert os.access(path, os.X_OK), "%s: HAProxy is required" % path
    return path


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers any method with the backend HAProxy tagged the request with
    (X-Stub-Backend, absent in cutover_default) and the target it received."""
    protocol_version = "HTTP/1.1"

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._echo
        raise AttributeError(name)

    def _echo(self):
        self.send_response(200)
        self.send_header("X-Stub-Backend", self.headers.get("X-Stub-Backend", "(default)"))
        # the target as received: self.path has leading "//" collapsed
        self.send_header("X-Stub-Path", self.requestline.split(" ")[1])
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture(scope="session")
def stub_port():
    server = _Server(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
