"""The http service over real sockets: the users' settings page, client
autoconfiguration, the admin centre, sessions and CSRF, and the HTTP
server's bounds. Every page is fetched with http.client (TLS with the
instance's self-signed certificate), raw sockets where the protocol itself
is under test."""

import imaplib
import plistlib
import re
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import tls_context, wait_until
from http_client import ADMIN_PASSWORD, PASSWORD, Client, Ids, web  # noqa: F401

XSD = Path(__file__).resolve().parent / "autoconfig-v1.1.xsd"


def settings_value(inst, service, key):
    r = inst.ctl("settings", "get", service, key, check=True)
    return r.stdout.split(" = ", 1)[1].strip()


def shown_entry(value):
    """The entry a user is shown: the first SSL one, else the first TLS."""
    entries = [e.strip().split(":") for e in value.split(",") if e.strip()]
    for enc in ("SSL", "TLS", "none"):
        for host, port, e in entries:
            if e == enc:
                return host, port, e
    return None


def signed_in(inst, user="alice", password=PASSWORD):
    c = Client(inst)
    r = c.login(user, password)
    assert r.status == 303, r.text
    return c


def raw(inst, data, tls=False, read_all=True):
    s = socket.create_connection(("127.0.0.1", inst.port("http", tls=tls)), timeout=10)
    if tls:
        s = tls_context().wrap_socket(s)
    s.sendall(data)
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            if not read_all:
                break
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)


def status_of(response_bytes):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response_bytes)
    assert m, response_bytes[:200]
    return int(m.group(1))


# ---- sign-in, sessions, headers ----


def test_login_page_headers_and_cookie_flags(web):
    c = Client(web)
    r = c.get("/login")
    assert r.status == 200
    csp = r.header("Content-Security-Policy")
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("Referrer-Policy") == "same-origin"
    assert r.header("Strict-Transport-Security").startswith("max-age=")
    assert r.header("Cache-Control") == "no-store"
    assert '<meta name="viewport"' in r.text and '<label for="user">' in r.text
    cookie = r.header("Set-Cookie")
    for flag in ("HttpOnly", "SameSite=Strict", "Secure"):
        assert flag in cookie
    r = c.login("alice", PASSWORD)
    assert r.status == 303 and r.header("Location") == "/settings"
    session = [v for v in r.headers_named("Set-Cookie") if v.startswith("postern_session=")][0]
    assert re.match(r"postern_session=[0-9a-f]{64}; ", session)
    for flag in ("HttpOnly", "SameSite=Strict", "Secure"):
        assert flag in session
    assert c.get("/settings").status == 200
    # no HSTS on plain HTTP
    assert Client(web, tls=False).get("/login").header("Strict-Transport-Security") is None


def test_login_over_plain_http_refused_by_default(web):
    plain = Client(web, tls=False)
    r = plain.get("/login")
    assert r.status == 200
    assert "secure connection" in r.text
    assert f"https://127.0.0.1:{web.port('http', tls=True)}/login" in r.text
    assert 'name="password"' not in r.text
    r = plain.post("/login", {"csrf": "x", "user": "alice", "password": PASSWORD})
    assert r.status == 403
    assert "postern_session" not in plain.cookies
    # plain-text-login allows it, and the cookie is then not Secure
    web.ctl("settings", "set", "http", "login-type=plain-text-login", check=True)
    r = plain.login("alice", PASSWORD)
    assert r.status == 303
    assert "Secure" not in [v for v in r.headers_named("Set-Cookie")
                            if v.startswith("postern_session=")][0]
    assert plain.get("/settings").status == 200


def test_login_failures_guests_and_csrf(web):
    c = Client(web)
    web.ctl("settings", "set", "http", "authentication-failure-delay=1", check=True)
    started = time.monotonic()
    r = c.login("alice", "wrong")
    assert r.status == 403 and "not correct" in r.text
    assert time.monotonic() - started >= 1.0  # authd's failure delay
    web.ctl("settings", "set", "http", "authentication-failure-delay=0", check=True)
    assert "postern_session" not in c.cookies
    r = c.login("nobody", "wrong")
    assert r.status == 403 and "not correct" in r.text
    r = c.login("guest1", PASSWORD)
    assert r.status == 403 and "may not sign in" in r.text
    r = c.login("anonymous", PASSWORD)
    assert r.status == 403
    assert "postern_session" not in c.cookies
    # a login form without its token, or with a token but no cookie
    c2 = Client(web)
    assert c2.post("/login", {"user": "alice", "password": PASSWORD}).status == 403
    token = c2.csrf("/login")
    c3 = Client(web)
    assert c3.post("/login", {"csrf": token, "user": "alice",
                              "password": PASSWORD}).status == 403
    assert "postern_session" not in c3.cookies
    # another site's Origin is refused even with a valid token
    token = c2.csrf("/login")
    r = c2.post("/login", {"csrf": token, "user": "alice", "password": PASSWORD},
                headers={"Origin": "https://evil.example"})
    assert r.status == 403
    # administrators may sign in here
    r = Client(web).login("boss", ADMIN_PASSWORD)
    assert r.status == 303 and r.header("Location") == "/admin"


def test_logout_ends_the_session(web):
    c = signed_in(web)
    session = c.cookies["postern_session"]
    assert c.post("/logout", {}).status == 403  # no token
    token = c.csrf("/settings")
    r = c.post("/logout", {"csrf": token})
    assert r.status == 303 and r.header("Location") == "/login"
    assert "postern_session" not in c.cookies
    # the old id is dead server-side too
    c.cookies["postern_session"] = session
    r = c.get("/settings")
    assert r.status == 303 and r.header("Location") == "/login"


def test_forged_session_ids_are_not_accepted(web):
    c = Client(web)
    c.cookies["postern_session"] = "0" * 64
    assert c.get("/settings").status == 303
    assert c.get("/admin").status == 303


# ---- the settings page ----


def test_settings_page_matches_posternctl(web):
    web.ctl("settings", "set", "imap4",
            "external-connection-settings=imap.example.test:143:TLS, imap.example.test:993:SSL",
            check=True)
    web.ctl("settings", "set", "pop3", "external-connection-settings=pop.example.test:110:TLS",
            check=True)
    c = signed_in(web)
    ids = Ids(c.get("/settings").text).values
    for page, service in (("imap4", "imap4"), ("pop3", "pop3"), ("smtp", "submission")):
        value = settings_value(web, service, "external-connection-settings")
        if not value:
            value = settings_value(web, service, "internal-connection-settings")
        host, port, enc = shown_entry(value)
        assert ids[f"{page}-server"] == host, (page, ids)
        assert ids[f"{page}-port"] == port
        assert ids[f"{page}-encryption"] == {"SSL": "SSL/TLS", "TLS": "STARTTLS"}[enc]
        assert ids[f"{page}-user"] == "alice"
        assert ids[f"{page}-status"] == "Enabled"
    # when both an SSL and a TLS entry exist, the SSL one is shown
    assert ids["imap4-port"] == "993"
    assert ids["pop3-port"] == "110"
    # a change is on the page at the next load
    web.ctl("settings", "set", "imap4", "external-connection-settings=other.example.test:994:SSL",
            check=True)
    ids = Ids(c.get("/settings").text).values
    assert ids["imap4-server"] == "other.example.test" and ids["imap4-port"] == "994"


def test_settings_page_shows_switches_and_service_state(web):
    web.ctl("user", "set", "alice", "pop3=off", check=True)
    web.ctl("service", "stop", "imap4", check=True)
    c = signed_in(web)
    ids = Ids(c.get("/settings").text).values
    assert ids["pop3-status"] == "Disabled for your account"
    assert ids["imap4-status"] == "Not running on this server"
    assert ids["smtp-status"] == "Enabled"
    admin = signed_in(web, "boss", ADMIN_PASSWORD)
    ids = Ids(admin.get("/settings").text).values
    assert ids["imap4-status"] == "Not available for administrator accounts"


def test_a_user_sees_only_their_own_settings(web):
    c = signed_in(web, "bob")
    r = c.get("/settings?user=alice")
    assert r.status == 200
    ids = Ids(r.text).values
    assert ids["imap4-user"] == "bob" and "alice" not in r.text
    assert Client(web).get("/settings").status == 303


# ---- access control of the admin centre ----


def test_users_cannot_see_the_admin_centre(web):
    c = signed_in(web)
    anonymous = Client(web)
    for path in ("/admin", "/admin/users", "/admin/user?name=bob", "/admin/services",
                 "/admin/settings", "/admin/test"):
        r = c.get(path)
        assert r.status == 403, path
        r = anonymous.get(path)
        assert r.status == 303 and r.header("Location") == "/login", path


def test_users_cannot_change_anything_even_with_their_token(web):
    c = signed_in(web)
    token = c.csrf("/settings")
    r = c.post("/admin/user", {"csrf": token, "name": "bob", "protocol": "imap4", "value": "off"})
    assert r.status == 403
    r = c.post("/admin/services", {"csrf": token, "service": "imap4", "action": "stop"})
    assert r.status == 403
    r = c.post("/admin/settings", {"csrf": token, "service": "imap4", "banner": "owned"})
    assert r.status == 403
    assert "imap4: on" in web.ctl("user", "show", "bob", check=True).stdout
    assert web.status("imap4")[1]["imap4"]["state"] == "running"
    assert settings_value(web, "imap4", "banner") != "owned"


def test_admin_posts_without_csrf_are_refused(web):
    admin = signed_in(web, "boss", ADMIN_PASSWORD)
    for path, form in (("/admin/user", {"name": "bob", "protocol": "imap4", "value": "off"}),
                       ("/admin/services", {"service": "pop3", "action": "stop"}),
                       ("/admin/settings", {"service": "imap4", "banner": "x"}),
                       ("/admin/test", {"protocol": "imap4"})):
        r = admin.post(path, form)
        assert r.status == 403, path
        r = admin.post(path, dict(form, csrf="0" * 64))
        assert r.status == 403, path
    assert web.status("pop3")[1]["pop3"]["state"] == "running"


# ---- the admin centre ----


def imap_login(inst, user, password=PASSWORD):
    with imaplib.IMAP4_SSL("127.0.0.1", inst.port("imap4", tls=True),
                           ssl_context=tls_context(), timeout=30) as m:
        m.login(user, password)
        m.logout()


def test_admin_lists_searches_and_switches_imap4(web):
    admin = signed_in(web, "boss", ADMIN_PASSWORD)
    r = admin.get("/admin/users")
    assert r.status == 200
    for name in ("alice", "bob", "boss", "guest1"):
        assert f">{name}</a>" in r.text
    r = admin.get("/admin/users?q=AL")
    assert ">alice</a>" in r.text and ">bob</a>" not in r.text
    r = admin.get("/admin/users?q=%3Cscript%3E")
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text
    imap_login(web, "alice")
    ids = Ids(admin.get("/admin/user?name=alice").text).values
    assert ids["imap4-state"] == "Enabled" and ids["pop3-state"] == "Enabled"
    token = admin.csrf("/admin/user?name=alice")
    r = admin.post("/admin/user", {"csrf": token, "name": "alice", "protocol": "imap4",
                                   "value": "off"})
    assert r.status == 303
    ids = Ids(admin.get(r.header("Location")).text).values
    assert ids["imap4-state"] == "Disabled" and ids["pop3-state"] == "Enabled"
    shown = web.ctl("user", "show", "alice", check=True).stdout
    assert "imap4: off" in shown and "pop3: on" in shown
    with pytest.raises(imaplib.IMAP4.error, match="IMAP4 is disabled"):
        imap_login(web, "alice")
    r = admin.post("/admin/user", {"csrf": token, "name": "alice", "protocol": "imap4",
                                   "value": "on"})
    assert r.status == 303
    imap_login(web, "alice")
    assert admin.post("/admin/user", {"csrf": token, "name": "nobody", "protocol": "imap4",
                                      "value": "off"}).status == 404
    assert admin.post("/admin/user", {"csrf": token, "name": "alice", "protocol": "http",
                                      "value": "off"}).status == 400


def test_admin_disabling_imap4_ends_open_sessions(web):
    m = imaplib.IMAP4_SSL("127.0.0.1", web.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    m.login("alice", PASSWORD)
    admin = signed_in(web, "boss", ADMIN_PASSWORD)
    token = admin.csrf("/admin/user?name=alice")
    admin.post("/admin/user", {"csrf": token, "name": "alice", "protocol": "imap4",
                               "value": "off"})

    def ended():
        try:
            m.noop()
            return False
        except (imaplib.IMAP4.abort, OSError):
            return True
    assert wait_until(ended, timeout=10)


def test_admin_starts_and_stops_services(web):
    admin = signed_in(web, "boss", ADMIN_PASSWORD)
    r = admin.get("/admin/services")
    ids = Ids(r.text).values
    assert ids["state-pop3"] == "running" and ids["state-http"] == "running"
    token = admin.csrf("/admin/services")
    r = admin.post("/admin/services", {"csrf": token, "service": "pop3", "action": "stop"})
    assert r.status == 200, r.text
    assert Ids(r.text).values["state-pop3"] == "stopped"
    assert web.status("pop3")[1]["pop3"]["state"] == "stopped"
    r = admin.post("/admin/services", {"csrf": token, "service": "pop3", "action": "start"})
    assert Ids(r.text).values["state-pop3"] == "running"
    assert web.status("pop3")[1]["pop3"]["state"] == "running"
    r = admin.post("/admin/services", {"csrf": token, "service": "imap4", "action": "restart"})
    assert r.status == 200 and Ids(r.text).values["state-imap4"] == "running"
    # a disabled service cannot start: the master's own error is shown
    web.ctl("service", "set", "lmtp", "startup=disabled", check=True)
    web.ctl("service", "stop", "lmtp", check=True)
    r = admin.post("/admin/services", {"csrf": token, "service": "lmtp", "action": "start"})
    assert r.status == 409 and "lmtp is disabled" in r.text
    # the page's own service is left to posternctl
    r = admin.post("/admin/services", {"csrf": token, "service": "http", "action": "stop"})
    assert r.status == 409
    assert admin.post("/admin/services", {"csrf": token, "service": "pop3",
                                          "action": "shutdown"}).status == 400


def test_admin_settings_validate_like_posternctl_and_apply_live(web):
    admin = signed_in(web, "boss", ADMIN_PASSWORD)
    r = admin.get("/admin/settings?service=imap4")
    assert r.status == 200
    assert 'id="k-banner"' in r.text and 'for="k-banner"' in r.text
    token = admin.csrf("/admin/settings?service=imap4")
    expected = web.ctl("settings", "set", "imap4", "max-command-size=99").stderr
    expected = expected.replace("posternctl: ", "").strip()
    r = admin.post("/admin/settings", {"csrf": token, "service": "imap4",
                                       "max-command-size": "99", "banner": "Hello there"})
    assert r.status == 400
    text = r.text.replace("&#39;", "'")
    assert expected in text, (expected, text)
    # nothing was written: a set with one bad pair writes nothing
    assert settings_value(web, "imap4", "banner") == "postern IMAP4 service ready."
    r = admin.post("/admin/settings", {"csrf": token, "service": "imap4",
                                       "banner": "Hello there", "login-type": "SecureLogin"})
    assert r.status == 200 and "Saved" in r.text
    assert settings_value(web, "imap4", "banner") == "Hello there"
    # live: the next connection greets with it
    s = tls_context().wrap_socket(socket.create_connection(
        ("127.0.0.1", web.port("imap4", tls=True)), timeout=10))
    assert b"Hello there" in s.recv(1024)
    s.close()
    r = admin.post("/admin/settings", {"csrf": token, "service": "nosuch", "banner": "x"})
    assert r.status == 404


def test_admin_connectivity_test(web):
    admin = signed_in(web, "boss", ADMIN_PASSWORD)
    token = admin.csrf("/admin/test")
    r = admin.post("/admin/test", {"csrf": token, "protocol": "imap4", "connection": "ssl",
                                   "user": "alice", "password": PASSWORD, "trust-any": "yes"})
    assert r.status == 200, r.text
    assert "Every step succeeded" in r.text
    for step in ("Connect", "TLS", "Greeting", "Capabilities", "Login", "Logout"):
        assert f">{step}</th>" in r.text
    r = admin.post("/admin/test", {"csrf": token, "protocol": "pop3", "connection": "tls",
                                   "user": "alice", "password": "wrong", "trust-any": "yes"})
    assert "The test failed" in r.text and "Failure" in r.text


# ---- autoconfiguration ----


def check_xsd(text):
    try:
        from lxml import etree
    except ImportError:
        pytest.skip("python3-lxml is not installed")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    doc = etree.fromstring(text.encode())
    assert schema.validate(doc), schema.error_log


def test_thunderbird_autoconfig(web):
    web.ctl("settings", "set", "imap4",
            "external-connection-settings=mail.example.test:993:SSL, mail.example.test:143:TLS",
            check=True)
    c = Client(web)
    for path in ("/mail/config-v1.1.xml?emailaddress=alice%40example.test",
                 "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice@example.test"):
        r = c.get(path)
        assert r.status == 200 and r.header("Content-Type").startswith("application/xml")
        check_xsd(r.text)
        root = ET.fromstring(r.text)
        assert root.get("version") == "1.1"
        provider = root.find("emailProvider")
        assert provider.get("id") == "example.test"
        assert provider.find("domain").text == "example.test"
        incoming = provider.findall("incomingServer")
        types = [(s.get("type"), s.find("port").text, s.find("socketType").text)
                 for s in incoming]
        assert types[:2] == [("imap", "993", "SSL"), ("imap", "143", "STARTTLS")]
        assert ("pop3", str(web.port("pop3", tls=True)), "SSL") in types
        for s in incoming + provider.findall("outgoingServer"):
            assert s.find("username").text == "%EMAILLOCALPART%"
        smtp = provider.findall("outgoingServer")
        assert smtp and smtp[0].find("port").text == str(web.port("submission", tls=True))
    # without the parameter: the instance's domain
    r = c.get("/mail/config-v1.1.xml")
    assert r.status == 200
    check_xsd(r.text)
    # only started services are listed
    web.ctl("service", "stop", "pop3", check=True)
    r = c.get("/mail/config-v1.1.xml?emailaddress=alice@example.test")
    assert 'type="pop3"' not in r.text and 'type="imap"' in r.text
    check_xsd(r.text)
    web.ctl("service", "stop", "imap4", check=True)
    assert c.get("/mail/config-v1.1.xml").status == 404
    # other domains are not ours; a bad address is a bad request
    assert c.get("/mail/config-v1.1.xml?emailaddress=a@elsewhere.test").status == 404
    assert c.get("/mail/config-v1.1.xml?emailaddress=not-an-address").status == 400
    # a local domain of the submission service: the whole address is the login
    web.ctl("settings", "set", "submission", "local-domains=other.test", check=True)
    web.ctl("service", "start", "imap4", check=True)
    r = c.get("/mail/config-v1.1.xml?emailaddress=x@other.test")
    assert r.status == 200 and "%EMAILADDRESS%" in r.text
    check_xsd(r.text)


AUTODISCOVER = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
NS = {"r": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      "a": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


def test_outlook_autodiscover(web):
    web.ctl("settings", "set", "imap4", "external-connection-settings=mail.example.test:143:TLS",
            check=True)
    c = Client(web)
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml",
                 "/AUTODISCOVER/AUTODISCOVER.XML"):
        r = c.post(path, AUTODISCOVER.format("alice@example.test"),
                   headers={"Content-Type": "text/xml"})
        assert r.status == 200, path
        root = ET.fromstring(r.body)
        account = root.find("a:Response/a:Account", NS)
        assert account.find("a:AccountType", NS).text == "email"
        protocols = {p.find("a:Type", NS).text: p for p in account.findall("a:Protocol", NS)}
        assert set(protocols) == {"IMAP", "POP3", "SMTP"}
        imap = protocols["IMAP"]
        assert imap.find("a:Server", NS).text == "mail.example.test"
        assert imap.find("a:Port", NS).text == "143"
        assert imap.find("a:Encryption", NS).text == "TLS"
        assert imap.find("a:LoginName", NS).text == "alice"
        assert protocols["POP3"].find("a:SSL", NS).text == "on"
    # the address is echoed escaped, whatever it holds
    odd = 'a<b>&"x\'@example.test'
    escaped = odd.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    r = c.post("/autodiscover/autodiscover.xml", AUTODISCOVER.format(escaped))
    assert r.status == 200
    root = ET.fromstring(r.body)
    assert root.find("a:Response/a:User/a:AutoDiscoverSMTPAddress", NS).text == odd
    assert b"<b>" not in r.body
    # only started services
    web.ctl("service", "stop", "pop3", check=True)
    r = c.post("/autodiscover/autodiscover.xml", AUTODISCOVER.format("alice@example.test"))
    assert b"<Type>POP3</Type>" not in r.body and b"<Type>IMAP</Type>" in r.body
    # malformed requests get the POX error, GET is not served
    r = c.post("/autodiscover/autodiscover.xml", "<nothing/>")
    assert r.status == 200
    assert ET.fromstring(r.body).find("r:Response/r:Error/r:ErrorCode", NS).text == "600"
    r = c.get("/autodiscover/autodiscover.xml")
    assert r.status == 405 and r.header("Allow") == "POST"
    # no CSRF token is asked of Autodiscover: it is not a form and changes nothing


def test_apple_configuration_profile(web):
    c = Client(web)
    r = c.get("/mail.mobileconfig?emailaddress=alice@example.test")
    assert r.status == 200
    assert r.header("Content-Type") == "application/x-apple-aspen-config"
    profile = plistlib.loads(r.body)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    mail = profile["PayloadContent"][0]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == "alice@example.test"
    host, port, enc = shown_entry(settings_value(web, "imap4", "internal-connection-settings"))
    assert mail["IncomingMailServerHostName"] == host
    assert mail["IncomingMailServerPortNumber"] == int(port)
    assert mail["IncomingMailServerUseSSL"] is True
    assert mail["IncomingMailServerUsername"] == "alice"
    assert mail["OutgoingMailServerPortNumber"] == web.port("submission", tls=True)
    assert re.fullmatch(r"[0-9A-F-]{36}", mail["PayloadUUID"])
    # the same address gets the same identity, another one another
    again = plistlib.loads(c.get("/mail.mobileconfig?emailaddress=alice@example.test").body)
    other = plistlib.loads(c.get("/mail.mobileconfig?emailaddress=bob@example.test").body)
    assert again["PayloadUUID"] == profile["PayloadUUID"] != other["PayloadUUID"]
    # signed in, the user's own address; POP3 when IMAP4 is not offered
    s = signed_in(web)
    web.ctl("service", "stop", "imap4", check=True)
    mail = plistlib.loads(s.get("/mail.mobileconfig").body)["PayloadContent"][0]
    assert mail["EmailAddress"] == "alice@example.test"
    assert mail["EmailAccountType"] == "EmailTypePOP"
    assert Client(web).get("/mail.mobileconfig").status == 400


# ---- the HTTP server itself ----


def test_status_codes_and_methods(web):
    c = Client(web)
    assert c.get("/nowhere").status == 404
    r = c.request("DELETE", "/login")
    assert r.status == 405 and "POST" in r.header("Allow")
    r = c.request("PUT", "/settings", body="x")
    assert r.status == 405
    r = c.request("HEAD", "/login")
    assert r.status == 200 and r.body == b"" and int(r.header("Content-Length")) > 100
    r = c.get("/style.css")
    assert r.status == 200 and r.header("Content-Type").startswith("text/css")
    r = c.get("/")
    assert r.status == 303 and r.header("Location") == "/login"
    assert status_of(raw(web, b"BREW / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 501
    assert status_of(raw(web, b"garbage\r\n\r\n")) == 400
    assert status_of(raw(web, b"GET / HTTP/1.1\r\n\r\n")) == 400
    assert status_of(raw(web, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")) == 505
    assert status_of(raw(web, b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")) == 501


def test_request_bounds(web):
    assert status_of(raw(web, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414
    assert status_of(raw(web, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n")) == 431
    many = b"".join(b"X-%d: y\r\n" % i for i in range(120))
    assert status_of(raw(web, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == 431
    r = raw(web, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n")
    assert status_of(r) == 413
    assert b"Connection: close" in r


def test_keep_alive_and_pipelining(web):
    two = (b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    r = raw(web, two, tls=True)
    answers = re.findall(rb"HTTP/1\.1 (\d{3}) ", r)
    assert answers == [b"200", b"404"]
    assert r.count(b"Connection: keep-alive") == 1 and r.count(b"Connection: close") == 1
    # HTTP/1.0 closes unless asked to keep alive
    r = raw(web, b"GET /style.css HTTP/1.0\r\n\r\n")
    assert status_of(r) == 200 and b"Connection: close" in r


def test_idle_connection_is_closed(web):
    web.ctl("settings", "set", "http", "keep-alive-timeout=1", check=True)
    s = socket.create_connection(("127.0.0.1", web.port("http")), timeout=10)
    s.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"}\n" not in data or not data.endswith(b"}\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert status_of(data) == 200
    s.settimeout(5)
    assert s.recv(100) == b""  # closed after a second of silence
    s.close()


def test_sessions_are_shared_by_every_http_worker(web):
    # authd keeps the sessions: whichever worker takes a connection knows it
    web.ctl("settings", "set", "http", "workers=3", check=True)
    assert wait_until(lambda: len(web.status("http")[1]["http"]["pids"].split(",")) == 3)
    c = signed_in(web)
    for _ in range(12):
        r = c.get("/settings")
        assert r.status == 200 and Ids(r.text).values["imap4-user"] == "alice"


# ---- metrics ----


def test_metrics_are_served_to_the_allowed_networks_only(web):
    c = Client(web)
    r = c.get("/metrics")
    assert r.status == 200, r.text
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    # the series of this very request's service and of the rest are there
    assert re.search(r'^postern_connections_total\{service="http"\} [1-9]\d*$', r.text, re.M), r.text
    assert "# TYPE postern_logins_total counter" in r.text
    # the same counters posternctl reads from the master
    ctl = web.ctl("metrics", check=True).stdout
    assert "# TYPE postern_connections_open gauge" in ctl
    # a network list without loopback shuts the scrape out, live
    web.ctl("settings", "set", "http", "metrics-networks=192.0.2.0/24", check=True)
    try:
        wait_until(lambda: Client(web).get("/metrics").status == 403, timeout=10)
        r = Client(web).get("/metrics")
        assert "postern_" not in r.text
    finally:
        web.ctl("settings", "set", "http", "metrics-networks=127.0.0.0/8, ::1/128", check=True)
    wait_until(lambda: Client(web).get("/metrics").status == 200, timeout=10)
