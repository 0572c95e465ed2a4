"""A small HTTP client for the http service's tests (http.client over real
sockets, TLS with the instance's self-signed certificate, cookies kept per
client) and the instance the web tests share: users alice (user), bob
(user), guest1 (guest) and boss (admin), with the POP3 and IMAP4 services
started."""

import http.client
import re
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from conftest import tls_context

PASSWORD = "Secret-pw1"
ADMIN_PASSWORD = "Admin-pw-9"
# SHA-512-crypt forms of the two (openssl passwd -6): imported hashes verify
# in milliseconds, where the yescrypt of `user add` takes most of a second
# per add and per login, many times over in these tests
HASHES = {
    PASSWORD: "$6$postern1$OZZQVBFjLIBM6yowvhdkUq0zGs4NJhACUlM1LU2YD3h3ZBP3nqdhn/hrL/"
              "w3Ryyb.nrwKRyFJaUMccPWr7ikT1",
    ADMIN_PASSWORD: "$6$postern2$YuRJWHDAdMcAB5wyJ7.DhTZw2qrklWMslpuTLfx7DJQQdi6q5JQiu.pB7"
                    "Gccs42E4.gj4oct2VKvtQQrFpVOx/",
}


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body
        self.text = body.decode("utf-8", "replace")

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def headers_named(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Client:
    """One browser-like client: keeps its cookies, one connection per
    request (keep-alive is tested with raw sockets)."""

    def __init__(self, inst, tls=True):
        self.inst = inst
        self.tls = tls
        self.cookies = {}

    @property
    def port(self):
        return self.inst.port("http", tls=self.tls)

    def request(self, method, path, body=None, headers=None):
        if self.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                               context=tls_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if isinstance(body, dict):
            body = urlencode(body)
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        resp = Response(r.status, r.getheaders(), r.read())
        conn.close()
        for value in resp.headers_named("Set-Cookie"):
            name, _, rest = value.partition("=")
            val = rest.split(";", 1)[0]
            if "Max-Age=0" in value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, form, **kw):
        return self.request("POST", path, body=form, **kw)

    def csrf(self, path):
        """The CSRF token of the first form on a page."""
        r = self.get(path)
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', r.text)
        assert m, f"no CSRF token on {path}: {r.status} {r.text[:500]}"
        return m.group(1)

    def login(self, user, password):
        token = self.csrf("/login")
        return self.post("/login", {"csrf": token, "user": user, "password": password})


class Ids(HTMLParser):
    """The text of every element with an id."""

    def __init__(self, html):
        super().__init__()
        self.values = {}
        self.stack = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(a.get("id"))
        if a.get("id"):
            self.values.setdefault(a["id"], "")

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        for i in self.stack:
            if i:
                self.values[i] += data


@pytest.fixture
def web(running):
    inst = running
    for name, kind, pw in (("alice", "user", PASSWORD), ("bob", "user", PASSWORD),
                           ("guest1", "guest", PASSWORD), ("boss", "admin", ADMIN_PASSWORD)):
        inst.ctl("user", "add", name, "--kind", kind, "--password-hash", HASHES[pw], check=True)
    inst.ctl("service", "start", "imap4", "imap4-backend", "pop3", "pop3-backend", check=True)
    # failed logins answer at once here; the delay has its own test
    for service in ("http", "imap4", "pop3"):
        inst.ctl("settings", "set", service, "authentication-failure-delay=0", check=True)
    return inst
