"""SCRAM-SHA-256 (RFC 5802, RFC 7677) over real sockets through the running
instance: IMAP4 AUTHENTICATE (with and without SASL-IR), POP3 AUTH and
submission AUTH, with a client written here on Python's standard library
(hashlib.pbkdf2_hmac, hmac, base64), then real clients (mbsync through
Cyrus SASL, msmtp and gsasl through GNU SASL). The client checks the
server's signature every time."""

import base64
import hashlib
import hmac
import imaplib
import os
import poplib
import shutil
import smtplib
import signal
import socket
import stringprep
import subprocess
import time
import unicodedata

import pytest

from conftest import SANITIZER_MARKS, Instance, deliver, tls_context, wait_until

PASSWORD = "Secret-pw1"
# the same password as a SHA-512-crypt hash made elsewhere: imported users
# have no SCRAM keys until their next password login
LEGACY_PASSWORD = "Legacy-pw2"


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def unb64(text):
    return base64.b64decode(text, validate=True)


class Scram:
    """The client's side of one SCRAM-SHA-256 exchange."""

    def __init__(self, user, password, gs2="n,,", nonce=None):
        self.user = user
        self.password = password
        self.gs2 = gs2
        self.cnonce = nonce or b64(os.urandom(18))
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.bare = f"n={name},r={self.cnonce}"
        self.server_first = None
        self.expected_signature = None
        self.salt = None
        self.iterations = None

    def first(self):
        return self.gs2 + self.bare

    def final(self, server_first, tamper_nonce=False):
        self.server_first = server_first
        attrs = dict(a.split("=", 1) for a in server_first.split(","))
        nonce, self.salt, self.iterations = attrs["r"], unb64(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.cnonce) and len(nonce) > len(self.cnonce)
        assert self.iterations >= 4096
        if tamper_nonce:
            nonce = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), self.salt,
                                     self.iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={b64(self.gs2)},r={nonce}"
        auth = f"{self.bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.expected_signature = hmac.new(server_key, auth, "sha256").digest()
        return f"{without_proof},p={b64(proof)}"

    def check(self, server_final):
        assert server_final.startswith("v="), server_final
        assert hmac.compare_digest(unb64(server_final[2:]), self.expected_signature), \
            "the server's signature is wrong"


class Line:
    """A line-oriented client over TLS (or plain TCP)."""

    def __init__(self, port, use_tls=True, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if use_tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def starttls(self):
        self.sock = tls_context().wrap_socket(self.sock)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def cmd(self, text):
        self.send(text)
        return self.line()

    def close(self):
        self.sock.close()


# ---- the instance ----

@pytest.fixture(scope="module")
def legacy_hash():
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=LEGACY_PASSWORD,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def prepare(inst, legacy_hash):
    inst.ctl("service", "start", "imap4-backend", "imap4", "pop3-backend", "pop3",
             check=True)
    for name, kind in (("alice", "user"), ("gina", "guest"), ("adam", "admin")):
        inst.ctl("user", "add", name, "--kind", kind, input=PASSWORD + "\n", check=True)
    inst.ctl("user", "add", "legacy", "--password-hash", legacy_hash, check=True)
    # a short failure delay, and no tarpit for the tests' own address (the
    # tarpit has a test of its own)
    for svc in ("imap4", "pop3", "submission"):
        inst.ctl("settings", "set", svc, "authentication-failure-delay=1",
                 "trusted-networks=127.0.0.0/8", check=True)
    assert wait_until(lambda: _connectable(inst.port("submission", tls=True)), timeout=15)
    return inst


@pytest.fixture
def inst(running, legacy_hash):
    """An instance of its own, for tests that change users or settings."""
    return prepare(running, legacy_hash)


@pytest.fixture(scope="module")
def shared(tmp_path_factory, legacy_hash):
    """One instance for the tests that change nothing but mailboxes."""
    base = tmp_path_factory.mktemp("scram")
    if os.geteuid() == 0:
        for p in (base, base.parent, base.parent.parent):
            os.chmod(p, 0o755)
    inst = Instance(base / "data")
    try:
        inst.init()
        inst.start()
        yield prepare(inst, legacy_hash)
    finally:
        inst.stop()
        inst.kill_all()
    log = inst.read_log()
    found = [m for m in SANITIZER_MARKS if m in log]
    assert not found, f"sanitizer report in posternd's log:\n{log[-6000:]}"


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def show(inst, user):
    r = inst.ctl("user", "show", user, check=True)
    return dict(l.split(": ", 1) for l in r.stdout.splitlines() if ": " in l)


# ---- one exchange per protocol ----

def imap_scram(inst, user, password, tag="a1", sasl_ir=True, tamper_nonce=False,
               cancel_at=None, gs2="n,,"):
    """(tagged answer, Scram, server-first) of an AUTHENTICATE over implicit TLS."""
    c = Line(inst.port("imap4", tls=True))
    assert c.line().startswith("* OK")
    s = Scram(user, password, gs2=gs2)
    if sasl_ir:
        r = c.cmd(f"{tag} AUTHENTICATE SCRAM-SHA-256 {b64(s.first())}")
    else:
        assert c.cmd(f"{tag} AUTHENTICATE SCRAM-SHA-256") == "+ "
        r = c.cmd(b64(s.first()))
    if not r.startswith("+ "):
        return r, s, None, c
    server_first = unb64(r[2:]).decode()
    if cancel_at == "final":
        return c.cmd("*"), s, server_first, c
    r = c.cmd(b64(s.final(server_first, tamper_nonce=tamper_nonce)))
    if not r.startswith("+ "):
        return r, s, server_first, c
    s.check(unb64(r[2:]).decode())
    if cancel_at == "confirm":
        return c.cmd("*"), s, server_first, c
    return c.cmd(""), s, server_first, c


def pop3_scram(inst, user, password, tamper_nonce=False, cancel_at=None):
    c = Line(inst.port("pop3", tls=True))
    assert c.line().startswith("+OK")
    s = Scram(user, password)
    r = c.cmd(f"AUTH SCRAM-SHA-256 {b64(s.first())}")
    if not r.startswith("+ "):
        return r, s, None, c
    server_first = unb64(r[2:]).decode()
    if cancel_at == "final":
        return c.cmd("*"), s, server_first, c
    r = c.cmd(b64(s.final(server_first, tamper_nonce=tamper_nonce)))
    if not r.startswith("+ "):
        return r, s, server_first, c
    s.check(unb64(r[2:]).decode())
    return c.cmd(""), s, server_first, c


def smtp_scram(inst, user, password, tamper_nonce=False, cancel_at=None, initial=True):
    c = Line(inst.port("submission", tls=True))
    assert c.line().startswith("220")
    c.send("EHLO client.test")
    ehlo = []
    while True:
        l = c.line()
        ehlo.append(l)
        if l.startswith("250 "):
            break
    assert any(l.startswith("250-AUTH") and "SCRAM-SHA-256" in l for l in ehlo), ehlo
    s = Scram(user, password)
    if initial:
        r = c.cmd(f"AUTH SCRAM-SHA-256 {b64(s.first())}")
    else:
        assert c.cmd("AUTH SCRAM-SHA-256") == "334 "
        r = c.cmd(b64(s.first()))
    if not r.startswith("334 "):
        return r, s, None, c
    server_first = unb64(r[4:]).decode()
    if cancel_at == "final":
        return c.cmd("*"), s, server_first, c
    r = c.cmd(b64(s.final(server_first, tamper_nonce=tamper_nonce)))
    if not r.startswith("334 "):
        return r, s, server_first, c
    s.check(unb64(r[4:]).decode())
    return c.cmd(""), s, server_first, c


# ---- advertising ----

def test_mechanism_is_offered_where_plain_is(shared):
    # secure-login (the default): nothing before TLS, SCRAM-SHA-256 after
    c = Line(shared.port("imap4"), use_tls=False)
    greeting = c.line()
    assert "AUTH=" not in greeting and "LOGINDISABLED" in greeting
    assert c.cmd("a STARTTLS").startswith("a OK")
    c.starttls()
    caps = c.cmd("b CAPABILITY")
    assert "AUTH=SCRAM-SHA-256" in caps and "AUTH=PLAIN" in caps and "SASL-IR" in caps
    assert "-PLUS" not in caps
    c.close()

    c = Line(shared.port("pop3"), use_tls=False)
    c.line()
    c.send("CAPA")
    caps = [l for l in iter(c.line, ".")]
    assert not any(l.startswith("SASL") for l in caps)
    assert c.cmd("AUTH SCRAM-SHA-256 biws").startswith("-ERR [AUTH]")
    c.close()
    p = poplib.POP3_SSL("127.0.0.1", shared.port("pop3", tls=True), context=tls_context(),
                        timeout=30)
    assert "SCRAM-SHA-256" in p.capa()["SASL"]
    p.quit()

    with smtplib.SMTP("127.0.0.1", shared.port("submission"), timeout=30) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        assert "SCRAM-SHA-256" in s.esmtp_features["auth"].split()
        assert "PLAIN" in s.esmtp_features["auth"].split()


def test_setting_turns_the_mechanism_off(inst):
    for svc in ("imap4", "pop3", "submission"):
        inst.ctl("settings", "set", svc, "sasl-scram-sha-256=false", check=True)
    r, _, _, c = imap_scram(inst, "alice", PASSWORD)
    assert r == "a1 NO Unsupported authentication mechanism"
    assert "SCRAM" not in c.cmd("a2 CAPABILITY")
    r, _, _, _ = pop3_scram(inst, "alice", PASSWORD)
    assert r.startswith("-ERR Unsupported authentication mechanism")
    with smtplib.SMTP_SSL("127.0.0.1", inst.port("submission", tls=True),
                          context=tls_context(), timeout=30) as s:
        s.ehlo("client.test")
        assert "SCRAM-SHA-256" not in s.esmtp_features["auth"]
        code, _ = s.docmd("AUTH", "SCRAM-SHA-256 " + b64("n,,n=alice,r=abc"))
        assert code == 504
    for svc in ("imap4", "pop3", "submission"):
        inst.ctl("settings", "set", svc, "sasl-scram-sha-256=true", check=True)
    r, _, _, _ = imap_scram(inst, "alice", PASSWORD)
    assert r.startswith("a1 OK"), r


# ---- success, with the server signature checked ----

def test_imap_success_with_sasl_ir_reaches_the_mailbox(shared):
    r, _, _, c = imap_scram(shared, "alice", PASSWORD)
    # the back end's answer, under the client's tag
    assert r.startswith("a1 OK [CAPABILITY IMAP4rev1"), r
    c.send("a2 SELECT INBOX")
    lines = [c.line()]
    while not lines[-1].startswith("a2 "):
        lines.append(c.line())
    assert lines[-1].startswith("a2 OK"), lines
    c.close()
    assert "login accepted: user=alice backend=local (SCRAM-SHA-256)" in shared.read_log()


def test_imap_success_without_sasl_ir_and_any_letter_case(shared):
    r, _, _, c = imap_scram(shared, "Alice", PASSWORD, sasl_ir=False)
    assert r.startswith("a1 OK [CAPABILITY"), r
    c.close()


def test_imaplib_authenticate(shared):
    m = imaplib.IMAP4_SSL("127.0.0.1", shared.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    s = Scram("alice", PASSWORD)
    steps = []

    def mech(challenge):
        steps.append(challenge)
        if len(steps) == 1:
            return s.first().encode()
        if len(steps) == 2:
            return s.final(challenge.decode()).encode()
        s.check(challenge.decode())
        return b""

    typ, _ = m.authenticate("SCRAM-SHA-256", mech)
    assert typ == "OK" and len(steps) == 3
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_pop3_success(shared):
    r, _, _, c = pop3_scram(shared, "alice", PASSWORD)
    assert r.startswith("+OK"), r
    assert c.cmd("STAT").startswith("+OK ")
    assert c.cmd("QUIT").startswith("+OK")


def test_submission_success_with_smtplib(shared):
    s = Scram("alice", PASSWORD)
    steps = []

    def mech(challenge=None):
        steps.append(challenge)
        if challenge is None:
            return s.first()
        if len(steps) == 2:
            return s.final(challenge.decode())
        s.check(challenge.decode())
        return ""

    with smtplib.SMTP("127.0.0.1", shared.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=tls_context())
        smtp.ehlo("client.test")
        code, _ = smtp.auth("SCRAM-SHA-256", mech)
        assert code == 235
        assert len(steps) == 3
        refused = smtp.sendmail("alice@example.test", ["alice@example.test"],
                                b"From: alice@example.test\r\nTo: alice@example.test\r\n"
                                b"Subject: sent after SCRAM\r\n\r\nhello\r\n")
        assert refused == {}


def test_submission_success_without_initial_response(shared):
    r, _, _, c = smtp_scram(shared, "alice", PASSWORD, initial=False)
    assert r.startswith("235 2.7.0"), r
    assert c.cmd("MAIL FROM:<alice@example.test>").startswith("250")


# ---- failures look alike ----

def test_wrong_password_and_unknown_user_look_the_same(shared):
    results = {}
    for user, pw in (("alice", "wrong-pw"), ("nobody", "wrong-pw"), ("legacy", "wrong-pw")):
        start = time.monotonic()
        r, s, server_first, _ = imap_scram(shared, user, pw)
        results[user] = (r, time.monotonic() - start, s)
    answers = {r for r, _, _ in results.values()}
    assert answers == {"a1 NO [AUTHENTICATIONFAILED] Authentication failed"}, results
    # every one waited for the failure delay (1 s here)
    assert all(t >= 0.9 for _, t, _ in results.values()), results
    # the server-first messages have the same shape: salt of the same size,
    # the same iteration count
    shapes = {(len(s.salt), s.iterations) for _, _, s in results.values()}
    assert len(shapes) == 1, shapes
    # an unknown name gets the same salt each time, as a real user does
    _, again, _, _ = imap_scram(shared, "NoBody", "x")
    assert again.salt == results["nobody"][2].salt
    _, again, _, _ = imap_scram(shared, "alice", "x")
    assert again.salt == results["alice"][2].salt
    assert results["alice"][2].salt != results["nobody"][2].salt
    log = shared.read_log()
    assert "login failed: user=alice: wrong password" in log
    assert "login failed: user=nobody: unknown user, or no SCRAM keys yet" in log


def test_pop3_and_submission_failures(shared):
    r, _, _, _ = pop3_scram(shared, "alice", "wrong-pw")
    assert r == "-ERR [AUTH] Authentication failed"
    r, _, _, _ = pop3_scram(shared, "nobody", "wrong-pw")
    assert r == "-ERR [AUTH] Authentication failed"
    r, _, _, _ = smtp_scram(shared, "alice", "wrong-pw")
    assert r.startswith("535 5.7.8")
    r, _, _, _ = smtp_scram(shared, "nobody", "wrong-pw")
    assert r.startswith("535 5.7.8")


def test_tampered_nonce_fails(shared):
    for fn, failed in ((imap_scram, "a1 NO [AUTHENTICATIONFAILED]"),
                       (pop3_scram, "-ERR [AUTH] Authentication failed"),
                       (smtp_scram, "535 5.7.8")):
        r, _, _, _ = fn(shared, "alice", PASSWORD, tamper_nonce=True)
        assert r.startswith(failed), (fn.__name__, r)
    assert "wrong nonce" in shared.read_log()


def test_replayed_client_final_fails(shared):
    # a client-final message seen on the wire is no good in another exchange
    c = Line(shared.port("imap4", tls=True))
    c.line()
    s = Scram("alice", PASSWORD)
    server_first = unb64(c.cmd(f"a1 AUTHENTICATE SCRAM-SHA-256 {b64(s.first())}")[2:]).decode()
    final = s.final(server_first)
    r = c.cmd(b64(final))
    assert r.startswith("+ ")
    assert c.cmd("").startswith("a1 OK")
    c.close()
    c = Line(shared.port("imap4", tls=True))
    c.line()
    # the same client-first (same client nonce): authd makes a new nonce
    r = c.cmd(f"a1 AUTHENTICATE SCRAM-SHA-256 {b64(s.first())}")
    assert unb64(r[2:]).decode() != server_first
    assert c.cmd(b64(final)).startswith("a1 NO [AUTHENTICATIONFAILED]")


def test_cancel_with_a_star(shared):
    mark = len(shared.read_log())
    r, _, _, c = imap_scram(shared, "alice", PASSWORD, cancel_at="final")
    assert r == "a1 BAD Authentication cancelled"
    # the session goes on
    assert c.cmd("a2 NOOP") == "a2 OK NOOP completed"
    r, _, _, c = imap_scram(shared, "alice", PASSWORD, cancel_at="confirm")
    assert r == "a1 BAD Authentication cancelled"
    # a cancelled exchange never logs in
    assert "login accepted" not in shared.read_log()[mark:]
    r, _, _, c = pop3_scram(shared, "alice", PASSWORD, cancel_at="final")
    assert r == "-ERR Authentication cancelled"
    r, _, _, c = smtp_scram(shared, "alice", PASSWORD, cancel_at="final")
    assert r.startswith("501")


def test_malformed_messages(shared):
    c = Line(shared.port("imap4", tls=True))
    c.line()
    # channel binding required by the client: not offered here
    r = c.cmd("a1 AUTHENTICATE SCRAM-SHA-256 " + b64("p=tls-unique,,n=alice,r=abc"))
    assert r.startswith("a1 BAD SCRAM-SHA-256: channel binding is not supported"), r
    r = c.cmd("a2 AUTHENTICATE SCRAM-SHA-256 " + b64("n,,m=ext,n=alice,r=abc"))
    assert r.startswith("a2 BAD SCRAM-SHA-256: mandatory extensions"), r
    r = c.cmd("a3 AUTHENTICATE SCRAM-SHA-256 bm9wZQ=")
    # the command parser already refuses a response that is not base64
    assert r.startswith("a3 BAD") and "base64" in r, r
    r = c.cmd("a4 AUTHENTICATE SCRAM-SHA-256 " + b64("n,a=adam,n=alice,r=abc"))
    assert r.startswith("a4 BAD authorization identity"), r
    # a missing attribute in the client-final message
    r = c.cmd("a5 AUTHENTICATE SCRAM-SHA-256 " + b64("n,,n=alice,r=abc"))
    assert r.startswith("+ ")
    r = c.cmd(b64("c=biws,r=" + unb64(r[2:]).decode().split(",")[0][2:]))
    assert r.startswith("a5 BAD SCRAM-SHA-256: malformed message"), r
    assert c.cmd("a6 NOOP") == "a6 OK NOOP completed"
    # y,,: the client supports channel binding and sees the server does not
    r, _, _, _ = imap_scram(shared, "alice", PASSWORD, gs2="y,,")
    assert r.startswith("a1 OK"), r
    # the authzid may be the user's own name
    r, _, _, _ = imap_scram(shared, "alice", PASSWORD, gs2="n,a=alice,")
    assert r.startswith("a1 OK"), r


# ---- policy, as for PLAIN ----

@pytest.mark.parametrize("user", ["gina", "adam"])
def test_guests_and_admins_are_refused_after_a_right_proof(shared, user):
    r, _, _, _ = imap_scram(shared, user, PASSWORD)
    assert r.startswith("a1 NO [CONTACTADMIN]"), r
    r, _, _, _ = pop3_scram(shared, user, PASSWORD)
    assert r.startswith("-ERR [AUTH] Access denied"), r
    # with a wrong password they only fail
    r, _, _, _ = imap_scram(shared, user, "wrong")
    assert r.startswith("a1 NO [AUTHENTICATIONFAILED]"), r


def test_anonymous_names_are_refused(shared):
    r, _, _, _ = imap_scram(shared, "anonymous", PASSWORD)
    assert r.startswith("a1 NO [CONTACTADMIN]"), r


def test_per_user_switch(inst):
    inst.ctl("user", "set", "alice", "imap4=off", check=True)
    r, _, _, _ = imap_scram(inst, "alice", PASSWORD)
    assert r.startswith("a1 NO [CONTACTADMIN]") and "IMAP4 is disabled" in r, r
    r, _, _, _ = pop3_scram(inst, "alice", PASSWORD)
    assert r.startswith("+OK"), r
    inst.ctl("user", "set", "alice", "imap4=on", "smtp=off", check=True)
    r, _, _, _ = smtp_scram(inst, "alice", PASSWORD)
    assert r.startswith("525 5.7.13"), r
    r, _, _, _ = imap_scram(inst, "alice", PASSWORD)
    assert r.startswith("a1 OK"), r


def test_three_failures_end_the_session(shared):
    c = Line(shared.port("imap4", tls=True))
    c.line()
    for n in range(3):
        s = Scram("alice", "wrong")
        r = c.cmd(f"a{n} AUTHENTICATE SCRAM-SHA-256 {b64(s.first())}")
        r = c.cmd(b64(s.final(unb64(r[2:]).decode())))
        assert r.startswith(f"a{n} NO [AUTHENTICATIONFAILED]")
    assert c.line() == "* BYE Too many failed logins"


# ---- keys: made with the password, or at the next password login ----

def test_user_without_keys_upgrades_at_a_plain_login(inst):
    assert show(inst, "legacy")["scram-sha-256"].startswith("none")
    r, _, _, _ = imap_scram(inst, "legacy", LEGACY_PASSWORD)
    assert r.startswith("a1 NO [AUTHENTICATIONFAILED]"), r
    assert "no SCRAM keys yet" in inst.read_log()
    # a password login (here POP3 USER/PASS) stores the keys ...
    p = poplib.POP3_SSL("127.0.0.1", inst.port("pop3", tls=True), context=tls_context(),
                        timeout=30)
    p.user("legacy")
    p.pass_(LEGACY_PASSWORD)
    p.quit()
    assert "user=legacy: SCRAM-SHA-256 keys stored" in inst.read_log()
    assert show(inst, "legacy")["scram-sha-256"] == "set (32768 iterations)"
    # ... and SCRAM-SHA-256 works from then on, everywhere
    r, _, _, _ = imap_scram(inst, "legacy", LEGACY_PASSWORD)
    assert r.startswith("a1 OK"), r
    r, _, _, _ = smtp_scram(inst, "legacy", LEGACY_PASSWORD)
    assert r.startswith("235"), r


def saslprep(text):
    """RFC 4013 for a stored string, written here from the RFC on Python's
    stringprep tables (independent of the server's libidn); None when the
    string is refused."""
    text = "".join(" " if stringprep.in_table_c12(ch) else ch
                   for ch in text if not stringprep.in_table_b1(ch))
    text = unicodedata.ucd_3_2_0.normalize("NFKC", text)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21_c22,
                  stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
                  stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
                  stringprep.in_table_c9, stringprep.in_table_a1)
    if any(t(ch) for ch in text for t in prohibited):
        return None
    if any(stringprep.in_table_d1(ch) for ch in text):
        if any(stringprep.in_table_d2(ch) for ch in text) or \
                not (stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])):
            return None
    return text or None


def test_non_ascii_password_keys_follow_saslprep(inst):
    # ROMAN NUMERAL NINE, SOFT HYPHEN, a-umlaut, NO-BREAK SPACE
    password = "\u2168\u00adp\u00e4ss\u00a0word"
    assert saslprep(password) == "IXp\u00e4ss word"
    inst.ctl("user", "add", "ulla", input=password + "\n", check=True)
    assert show(inst, "ulla")["scram-sha-256"] == "set (32768 iterations)"
    # the client proves the prepared password (RFC 5802 2.2), not its raw bytes
    r, _, _, _ = imap_scram(inst, "ulla", saslprep(password))
    assert r.startswith("a1 OK"), r
    r, _, _, _ = pop3_scram(inst, "ulla", password)
    assert r.startswith("-ERR"), r
    # GNU SASL prepares the password itself
    r = subprocess.run(["gsasl", "--client", "--imap", "--connect",
                        f"127.0.0.1:{inst.port('imap4')}", "--starttls", "--no-cb",
                        "--x509-ca-file=", "--mechanism", "SCRAM-SHA-256",
                        "--authentication-id", "ulla", "--password", password, "--verbose"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "Client authentication finished (server trusted)" in r.stdout + r.stderr, \
        r.stdout + r.stderr
    # PLAIN takes the password as typed
    p = poplib.POP3_SSL("127.0.0.1", inst.port("pop3", tls=True), context=tls_context(),
                        timeout=30)
    p.user("ulla")
    assert p.pass_(password).startswith(b"+OK")
    p.quit()

    # a password SASLprep refuses (a right-to-left letter before Latin
    # ones): no keys, a warning, and PLAIN still logs in
    refused = "\u05d0bc-pw1"
    assert saslprep(refused) is None
    r = inst.ctl("user", "add", "rina", input=refused + "\n", check=True)
    assert "SASLprep" in r.stderr and "PLAIN and LOGIN only" in r.stderr, r.stderr
    assert show(inst, "rina")["scram-sha-256"].startswith("none")
    r, _, _, _ = imap_scram(inst, "rina", refused)
    assert r.startswith("a1 NO [AUTHENTICATIONFAILED]"), r
    p = poplib.POP3_SSL("127.0.0.1", inst.port("pop3", tls=True), context=tls_context(),
                        timeout=30)
    p.user("rina")
    assert p.pass_(refused).startswith(b"+OK")
    p.quit()
    # and a password login does not make keys of it either
    assert show(inst, "rina")["scram-sha-256"].startswith("none")


def test_new_password_replaces_the_keys(inst, legacy_hash):
    assert show(inst, "alice")["scram-sha-256"] == "set (32768 iterations)"
    inst.ctl("user", "passwd", "alice", input="Another-pw3\n", check=True)
    r, _, _, _ = imap_scram(inst, "alice", PASSWORD)
    assert r.startswith("a1 NO [AUTHENTICATIONFAILED]"), r
    r, _, _, _ = imap_scram(inst, "alice", "Another-pw3")
    assert r.startswith("a1 OK"), r


def test_imported_keys(inst, legacy_hash):
    # keys made elsewhere, in Dovecot's / gsasl's form, with the hash of the
    # same password
    salt = os.urandom(12)
    salted = hashlib.pbkdf2_hmac("sha256", LEGACY_PASSWORD.encode(), salt, 4096)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    keys = f"{{SCRAM-SHA-256}}4096,{b64(salt)},{b64(stored)},{b64(server)}"
    inst.ctl("user", "add", "imported", "--password-hash", legacy_hash, "--scram-sha-256",
             keys, check=True)
    assert show(inst, "imported")["scram-sha-256"] == "set (4096 iterations)"
    r, s, _, _ = imap_scram(inst, "imported", LEGACY_PASSWORD)
    assert r.startswith("a1 OK"), r
    assert s.salt == salt and s.iterations == 4096
    bad = inst.ctl("user", "add", "broken", "--password-hash", legacy_hash,
                   "--scram-sha-256", "{SCRAM-SHA-256}100,abc")
    assert bad.returncode == 1 and "accepted:" in bad.stderr
    bad = inst.ctl("user", "add", "broken", "--scram-sha-256", keys)
    assert bad.returncode == 2


def authd_pid(inst):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"--authd" in cmd and str(inst.datadir).encode() in cmd:
            return int(entry)
    return None


def test_a_new_authd_goes_on_storing_keys(inst):
    # authd opens directory.db before it drops its privileges; a restarted
    # one must still be able to store keys and serve SCRAM
    pid = authd_pid(inst)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: authd_pid(inst) not in (None, pid), timeout=5)

    def plain_login():
        c = Line(inst.port("imap4", tls=True))
        c.line()
        r = c.cmd(f"a1 LOGIN legacy {LEGACY_PASSWORD}")
        c.close()
        return r.startswith("a1 OK")

    assert wait_until(plain_login, timeout=10, interval=0.2)
    assert show(inst, "legacy")["scram-sha-256"].startswith("set")
    r, _, _, _ = imap_scram(inst, "legacy", LEGACY_PASSWORD)
    assert r.startswith("a1 OK"), r


def test_an_exchange_does_not_outlive_its_authd(inst):
    c = Line(inst.port("imap4", tls=True))
    c.line()
    s = Scram("alice", PASSWORD)
    r = c.cmd(f"a1 AUTHENTICATE SCRAM-SHA-256 {b64(s.first())}")
    final = s.final(unb64(r[2:]).decode())
    pid = authd_pid(inst)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: authd_pid(inst) not in (None, pid), timeout=5)
    time.sleep(0.5)
    # the new authd knows nothing of the exchange: a failure, not a login
    r = c.cmd(b64(final))
    assert r.startswith("a1 NO"), r
    r, _, _, _ = imap_scram(inst, "alice", PASSWORD)
    assert r.startswith("a1 OK"), r


def test_tarpit_counts_scram_failures(inst):
    inst.ctl("settings", "reset", "imap4", "trusted-networks", check=True)
    times = []
    for _ in range(3):
        start = time.monotonic()
        r, _, _, _ = imap_scram(inst, "alice", "wrong")
        times.append(time.monotonic() - start)
        assert r.startswith("a1 NO [AUTHENTICATIONFAILED]"), r
    # 1 s, then the tarpit's 1 s more, then 2 s more
    assert times[0] < 1.9 and times[2] >= 2.9, times


# ---- real clients ----

@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync is not installed")
def test_mbsync_with_cyrus_sasl_scram(shared, tmp_path):
    deliver(shared, "alice@example.test",
            b"From: a@example.org\r\nSubject: for mbsync\r\n\r\nbody\r\n")
    (tmp_path / "mail").mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount test
Host 127.0.0.1
Port {shared.port('imap4', tls=True)}
User alice
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {shared.datadir}/tls/server.crt
AuthMechs SCRAM-SHA-256

IMAPStore remote
Account test

MaildirStore local
Path {tmp_path}/mail/
Inbox {tmp_path}/mail/INBOX

Channel inbox
Far :remote:INBOX
Near :local:INBOX
Create Near
Sync Pull
SyncState *
""")
    r = subprocess.run(["mbsync", "-V", "-c", str(rc), "-a"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SCRAM-SHA-256" in r.stdout + r.stderr
    got = [p.read_bytes() for p in (tmp_path / "mail" / "INBOX").rglob("*") if p.is_file()]
    assert any(b"Subject: for mbsync" in m for m in got)
    assert "user=alice backend=local (SCRAM-SHA-256)" in shared.read_log()


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp is not installed")
def test_msmtp_with_gnu_sasl_scram(shared, tmp_path):
    rc = tmp_path / "msmtprc"
    rc.write_text(f"""account test
host 127.0.0.1
port {shared.port('submission')}
tls on
tls_starttls on
tls_trust_file {shared.datadir}/tls/server.crt
tls_certcheck off
auth scram-sha-256
user alice
password {PASSWORD}
from alice@example.test
""")
    rc.chmod(0o600)
    msg = ("From: alice@example.test\nTo: alice@example.test\nSubject: from msmtp\n\n"
           "sent with SCRAM-SHA-256\n")
    r = subprocess.run(["msmtp", "-C", str(rc), "-a", "test", "-d", "alice@example.test"],
                       input=msg, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "AUTH SCRAM-SHA-256" in r.stdout + r.stderr
    m = imaplib.IMAP4_SSL("127.0.0.1", shared.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    m.login("alice", PASSWORD)
    m.select("INBOX")
    assert wait_until(lambda: m.noop() and m.search(None, "SUBJECT", "msmtp")[1][0], timeout=15)
    m.logout()


@pytest.mark.skipif(shutil.which("gsasl") is None, reason="gsasl is not installed")
def test_gsasl_imap_client(shared):
    # --no-cb: over TLS 1.3 this gsasl finds no channel binding type it
    # knows and gives up before it sends anything; postern offers none
    # anyway
    r = subprocess.run(["gsasl", "--client", "--imap", "--connect",
                        f"127.0.0.1:{shared.port('imap4')}", "--starttls", "--no-cb",
                        "--x509-ca-file=", "--mechanism", "SCRAM-SHA-256",
                        "--authentication-id", "alice", "--password", PASSWORD, "--verbose"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # gsasl checked the server's signature
    assert "Client authentication finished (server trusted)" in out, out
    assert "user=alice backend=local (SCRAM-SHA-256)" in shared.read_log(), out
