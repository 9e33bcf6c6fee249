# SPDX-License-Identifier: Apache-2.0
"""One HTTP/1.1 request on a fresh connection, closed after the answer.

Shared by scripts/walk, the benchmark and the Python test suites: they all
ask one thing of an app, of HAProxy or of an agent's /metrics and read the
whole answer.
"""
import http.client
import json as _json


class Reply:
    """status (int), headers ({lower-case name: value}), body (bytes)."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.body) if self.body else None


def request(addr, method, path, body=None, headers=None, json=None, timeout=10.0):
    """Sends one request to addr ("host:port", or a port on 127.0.0.1).
    body: bytes or str sent as is; json: an object sent as JSON with its
    Content-Type. Raises OSError (or http.client's errors) when the peer
    does not answer."""
    if isinstance(addr, int):
        host, port = "127.0.0.1", addr
    else:
        host, port = addr.rsplit(":", 1)
        host, port = host.strip("[]"), int(port)
    h = dict(headers or {})
    if json is not None:
        body = _json.dumps(json).encode()
        h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()
