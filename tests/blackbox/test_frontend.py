"""The pop3 and imap4 front ends before login, through real sockets with
Python's poplib, imaplib and ssl: greetings, capabilities, STARTTLS/STLS,
the login policy (login type, guests, admins, anonymous, per-user switches,
wrong passwords), bounds, and the hand-over to an unreachable back end."""

import imaplib
import os
import poplib
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import tls_context, wait_until


@pytest.fixture
def fe(running):
    """posternd with the pop3 and imap4 front ends started and users of
    every kind."""
    running.ctl("service", "start", "pop3", "imap4", check=True)
    for name, kind in (("alice", "user"), ("gina", "guest"), ("adam", "admin"),
                       ("shelly", "shared")):
        running.ctl("user", "add", name, "--kind", kind, input="Secret-pw1\n", check=True)
    return running


class Raw:
    """A line-oriented client over a plain or TLS socket."""

    def __init__(self, port, use_tls=False, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if use_tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode(errors="replace")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


# ---- POP3 ----

def test_pop3_greeting_and_capa_before_tls(fe):
    c = Raw(fe.port("pop3"))
    assert c.line().startswith("+OK ")
    assert c.cmd("CAPA") == "+OK Capability list follows"
    caps = []
    while (l := c.line()) != ".":
        caps.append(l)
    # secure-login (the default): no plaintext mechanisms before TLS
    assert "STLS" in caps
    assert "USER" not in caps
    assert not any(l.startswith("SASL") for l in caps)
    assert "RESP-CODES" in caps and "AUTH-RESP-CODE" in caps


def test_pop3_plaintext_refused_before_tls(fe):
    c = Raw(fe.port("pop3"))
    c.line()
    r = c.cmd("USER alice")
    assert r.startswith("-ERR [AUTH]") and "unencrypted" in r
    r = c.cmd("AUTH PLAIN AGFsaWNlAFNlY3JldC1wdzE=")
    assert r.startswith("-ERR [AUTH]")


def test_pop3_stls_then_capa_offers_login(fe):
    p = poplib.POP3("127.0.0.1", fe.port("pop3"), timeout=10)
    p.stls(tls_context())
    caps = p.capa()
    assert "USER" in caps and "SASL" in caps and "STLS" not in caps
    assert set(caps["SASL"]) >= {"PLAIN", "LOGIN"}
    p.quit()


def test_pop3_implicit_tls_login_reaches_the_backend_hand_over(fe):
    p = poplib.POP3_SSL("127.0.0.1", fe.port("pop3", tls=True), timeout=15,
                        context=tls_context())
    p.user("alice")
    # the password is right; the mailbox back end is not running
    with pytest.raises(poplib.error_proto) as e:
        p.pass_("Secret-pw1")
    assert b"[SYS/TEMP]" in e.value.args[0]
    log = fe.read_log()
    assert "login accepted: user=alice" in log
    assert "back end" in log


def test_pop3_wrong_password_and_unknown_user_look_the_same(fe):
    answers = []
    for user, pw in (("alice", "wrong"), ("nobody", "wrong")):
        p = poplib.POP3_SSL("127.0.0.1", fe.port("pop3", tls=True), timeout=30,
                            context=tls_context())
        p.user(user)
        start = time.monotonic()
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(pw)
        answers.append((e.value.args[0], time.monotonic() - start))
        p.close()
    assert answers[0][0] == answers[1][0] == b"-ERR [AUTH] Authentication failed"
    # both waited for the failure delay (2 s by default)
    assert answers[0][1] >= 1.5 and answers[1][1] >= 1.5


@pytest.mark.parametrize("user", ["gina", "adam", "anonymous", "Guest"])
def test_pop3_guest_admin_and_anonymous_never_log_in(fe, user):
    c = Raw(fe.port("pop3", tls=True), use_tls=True, timeout=30)
    c.line()
    c.cmd(f"USER {user}")
    r = c.cmd("PASS Secret-pw1")
    assert r.startswith("-ERR [AUTH]"), r
    assert "login refused" in fe.read_log()


def test_pop3_switch_off_refuses_next_login_without_restart(fe):
    fe.ctl("user", "set", "alice", "pop3=off", check=True)
    c = Raw(fe.port("pop3", tls=True), use_tls=True, timeout=30)
    c.line()
    c.cmd("USER alice")
    r = c.cmd("PASS Secret-pw1")
    assert r.startswith("-ERR [AUTH]") and "POP3 is disabled" in r
    c.close()
    # IMAP4 is still on for alice
    m = imaplib.IMAP4_SSL("127.0.0.1", fe.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("alice", "Secret-pw1")
    assert "UNAVAILABLE" in str(e.value)
    fe.ctl("user", "set", "alice", "pop3=on", check=True)
    c = Raw(fe.port("pop3", tls=True), use_tls=True, timeout=30)
    c.line()
    c.cmd("USER alice")
    assert c.cmd("PASS Secret-pw1").startswith("-ERR [SYS/TEMP]")


def test_pop3_sasl_plain_and_cancel(fe):
    c = Raw(fe.port("pop3", tls=True), use_tls=True, timeout=30)
    c.line()
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("*") == "-ERR Authentication cancelled"
    assert c.cmd("AUTH PLAIN not-base64!").startswith("-ERR")
    # "\0alice\0Secret-pw1"
    r = c.cmd("AUTH PLAIN AGFsaWNlAFNlY3JldC1wdzE=")
    assert r.startswith("-ERR [SYS/TEMP]"), r


def test_pop3_plain_text_login_type_allows_cleartext(fe):
    fe.ctl("settings", "set", "pop3", "login-type=plain-text-login", check=True)
    p = poplib.POP3("127.0.0.1", fe.port("pop3"), timeout=30)
    caps = p.capa()
    assert "USER" in caps and "SASL" in caps
    p.user("alice")
    with pytest.raises(poplib.error_proto) as e:
        p.pass_("Secret-pw1")
    assert b"[SYS/TEMP]" in e.value.args[0]


def test_pop3_overlong_line_gets_an_error_and_the_session_goes_on(fe):
    c = Raw(fe.port("pop3"))
    c.line()
    c.send("CAPA " + "x" * 100000 + "\r\n")
    assert c.line().startswith("-ERR Command line too long")
    assert c.cmd("CAPA") == "+OK Capability list follows"


def test_pop3_garbage_and_repeated_bad_commands_end_the_session(fe):
    c = Raw(fe.port("pop3"))
    c.line()
    c.send(b"\x00\xff\xfe garbage\r\n")
    assert c.line().startswith("-ERR")
    for _ in range(12):
        try:
            c.send("BOGUS\r\n")
        except OSError:
            break
    assert c.closed()
    # others are still served
    assert Raw(fe.port("pop3")).line().startswith("+OK")


def test_pop3_stls_command_injection_is_not_executed(fe):
    c = Raw(fe.port("pop3"))
    c.line()
    # the CAPA after STLS in the same packet must be discarded
    c.send("STLS\r\nCAPA\r\n")
    assert c.line() == "+OK Begin TLS negotiation"
    tls = tls_context().wrap_socket(c.sock)
    tls.settimeout(2)
    with pytest.raises(socket.timeout):
        tls.recv(100)
    tls.sendall(b"CAPA\r\n")
    tls.settimeout(10)
    assert tls.recv(100).startswith(b"+OK Capability")


def test_max_connections_from_single_ip(fe):
    fe.ctl("settings", "set", "pop3", "max-connections-from-single-ip=2", check=True)
    a, b = Raw(fe.port("pop3")), Raw(fe.port("pop3"))
    assert a.line().startswith("+OK") and b.line().startswith("+OK")
    c = Raw(fe.port("pop3"))
    r = c.line()
    assert r.startswith("-ERR [SYS/TEMP]") and "address" in r
    assert c.closed()
    a.cmd("QUIT")
    a.close()
    d = wait_until(lambda: Raw(fe.port("pop3")).line().startswith("+OK"), timeout=5)
    assert d


# ---- IMAP4 ----

def test_imap_greeting_capabilities_secure_login(fe):
    c = Raw(fe.port("imap4"))
    g = c.line()
    assert g.startswith("* OK [CAPABILITY IMAP4rev1")
    assert "STARTTLS" in g and "LOGINDISABLED" in g and "AUTH=PLAIN" not in g
    r = c.cmd("a1 LOGIN alice Secret-pw1")
    assert r.startswith("a1 NO [PRIVACYREQUIRED]")


def test_imap_starttls_then_login(fe):
    m = imaplib.IMAP4("127.0.0.1", fe.port("imap4"), timeout=30)
    m.starttls(ssl_context=tls_context())
    caps = m.capabilities
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" not in caps
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("alice", "wrong")
    assert "AUTHENTICATIONFAILED" in str(e.value)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("alice", "Secret-pw1")
    assert "UNAVAILABLE" in str(e.value)
    m.logout()


def test_imap_login_with_literals_and_quoted_strings(fe):
    c = Raw(fe.port("imap4", tls=True), use_tls=True, timeout=30)
    c.line()
    assert c.cmd("a1 LOGIN {5}") == "+ Ready for literal data"
    c.send('alice "Secret-pw1"\r\n')
    assert c.line().startswith("a1 NO [UNAVAILABLE]")
    # non-synchronising literal (LITERAL+): no continuation
    c.send("a2 LOGIN {5+}\r\nalice {10+}\r\nSecret-pw1\r\n")
    assert c.line().startswith("a2 NO [UNAVAILABLE]")
    c.send('a3 LOGIN "al\\"ice" x\r\n')
    assert c.line().startswith("a3 NO [AUTHENTICATIONFAILED]")


def test_imap_authenticate_plain_with_sasl_ir(fe):
    c = Raw(fe.port("imap4", tls=True), use_tls=True, timeout=30)
    c.line()
    r = c.cmd("a1 AUTHENTICATE PLAIN AGFsaWNlAFNlY3JldC1wdzE=")
    assert r.startswith("a1 NO [UNAVAILABLE]"), r
    assert c.cmd("a2 AUTHENTICATE PLAIN") == "+ "
    assert c.cmd("*").startswith("a2 BAD")
    assert c.cmd("a3 AUTHENTICATE LOGIN") == "+ VXNlcm5hbWU6"
    assert c.cmd("YWxpY2U=") == "+ UGFzc3dvcmQ6"
    assert c.cmd("U2VjcmV0LXB3MQ==").startswith("a3 NO [UNAVAILABLE]")


@pytest.mark.parametrize("user", ["gina", "adam", "anonymous", "GUEST"])
def test_imap_guest_admin_and_anonymous_never_log_in(fe, user):
    m = imaplib.IMAP4_SSL("127.0.0.1", fe.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(user, "Secret-pw1")
    assert "CONTACTADMIN" in str(e.value)


def test_imap_shared_mailbox_kind_may_log_in(fe):
    m = imaplib.IMAP4_SSL("127.0.0.1", fe.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("shelly", "Secret-pw1")
    assert "UNAVAILABLE" in str(e.value)


def test_imap_commands_before_login(fe):
    c = Raw(fe.port("imap4"))
    c.line()
    assert c.cmd("a NOOP") == "a OK NOOP completed"
    assert c.cmd('b ID ("name" "test")') == '* ID ("name" "postern")'
    assert c.line() == "b OK ID completed"
    assert c.cmd("c SELECT INBOX").startswith("c BAD")
    assert c.cmd("").startswith("* BAD")
    assert c.cmd("+x NOOP").startswith("* BAD")
    assert c.cmd("d LOGOUT") == "* BYE Logging out"
    assert c.line() == "d OK Logout completed"
    assert c.closed()


def test_imap_huge_literal_before_login_is_refused(fe):
    c = Raw(fe.port("imap4", tls=True), use_tls=True)
    c.line()
    assert c.cmd("a LOGIN {999999999}").startswith("a BAD [TOOBIG]")
    # a non-synchronising one cannot be skipped: the connection ends
    c.send("b LOGIN {999999+}\r\n")
    assert c.line().startswith("b BAD [TOOBIG]")
    assert c.line().startswith("* BYE")
    assert c.closed()


def test_imap_overlong_line(fe):
    c = Raw(fe.port("imap4"))
    c.line()
    c.send("a NOOP " + "x" * 50000 + "\r\n")
    assert c.line().startswith("* BAD [TOOBIG] Command line too long")
    assert c.cmd("b NOOP") == "b OK NOOP completed"


# ---- resilience and live changes ----

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


def test_logins_work_again_after_authd_is_killed(fe):
    pid = authd_pid(fe)
    assert pid
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: authd_pid(fe) not in (None, pid), timeout=5)

    def login_answered():
        c = Raw(fe.port("pop3", tls=True), use_tls=True, timeout=30)
        c.line()
        c.cmd("USER alice")
        r = c.cmd("PASS Secret-pw1")
        c.close()
        return r.startswith("-ERR [SYS/TEMP] Mailbox")

    assert wait_until(login_answered, timeout=10, interval=0.2)
    assert "authd: worker" in fe.read_log()


def served_certificate_subject(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with tls_context().wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                       input=der, capture_output=True, timeout=10)
    return r.stdout.decode()


def test_replaced_certificate_is_served_to_new_connections(fe):
    port = fe.port("imap4", tls=True)
    assert "mail.example.test" in served_certificate_subject(port)
    tls_dir = fe.datadir / "tls"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=renewed.example.test",
                    "-keyout", str(tls_dir / "new.key"), "-out", str(tls_dir / "new.crt")],
                   check=True, capture_output=True, timeout=30)
    for name in ("new.key", "new.crt"):
        st = os.stat(tls_dir / "server.key")
        os.chown(tls_dir / name, st.st_uid, st.st_gid)
        os.chmod(tls_dir / name, 0o640)
    os.rename(tls_dir / "new.key", tls_dir / "server.key")
    os.rename(tls_dir / "new.crt", tls_dir / "server.crt")
    assert wait_until(lambda: "renewed.example.test" in served_certificate_subject(port),
                      timeout=10, interval=0.5)


def test_idle_and_trickling_clients_do_not_hold_up_others(fe):
    # 300 connections that say nothing, and 20 that trickle a command one
    # byte at a time
    idle = [socket.create_connection(("127.0.0.1", fe.port("imap4")), timeout=10)
            for _ in range(300)]
    slow = [socket.create_connection(("127.0.0.1", fe.port("pop3")), timeout=10)
            for _ in range(20)]
    try:
        for s in slow:
            s.sendall(b"CA")
        start = time.monotonic()
        m = imaplib.IMAP4_SSL("127.0.0.1", fe.port("imap4", tls=True), ssl_context=tls_context(),
                              timeout=30)
        assert "IMAP4REV1" in m.capabilities
        m.logout()
        c = Raw(fe.port("pop3"))
        assert c.line().startswith("+OK")
        assert c.cmd("CAPA").startswith("+OK")
        assert time.monotonic() - start < 5
        # the idle ones are all still held, and counted
        assert wait_until(lambda: int(fe.status("imap4")[1]["imap4"]["connections"]) >= 300,
                          timeout=5)
        for s in slow:
            s.sendall(b"P")
    finally:
        for s in idle + slow:
            s.close()


def test_garbage_flood_gets_errors_and_a_disconnect(fe):
    c = Raw(fe.port("imap4"))
    c.line()
    # one huge line of random bytes: one error, and the session goes on
    junk = os.urandom(200000).replace(b"\n", b"x")
    c.send(junk + b"\r\n")
    assert c.line().startswith("* BAD [TOOBIG] Command line too long")
    assert c.cmd("a NOOP") == "a OK NOOP completed"
    # many short garbage lines: errors, then a disconnect
    try:
        for _ in range(50):
            c.send(os.urandom(64).replace(b"\n", b"x") + b"\r\n")
    except OSError:
        pass
    assert c.closed(timeout=10)
    # the service is fine
    assert Raw(fe.port("imap4")).line().startswith("* OK")


def proxy_v2_header(src, dst, sport, dport):
    body = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst) + \
        sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


def test_proxy_protocol_from_trusted_balancer_gives_the_real_client(fe):
    fe.ctl("settings", "set", "pop3", "proxy-protocol-trusted=127.0.0.0/8",
           "max-connections-from-single-ip=1", check=True)
    port = fe.port("pop3")
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    a.sendall(proxy_v2_header("203.0.113.7", "192.0.2.1", 40000, 110))
    assert a.recv(100).startswith(b"+OK")
    # another real client behind the same balancer is counted apart
    b = socket.create_connection(("127.0.0.1", port), timeout=10)
    b.sendall(proxy_v2_header("203.0.113.8", "192.0.2.1", 40001, 110))
    assert b.recv(100).startswith(b"+OK")
    # the same real client again hits its own limit
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(proxy_v2_header("203.0.113.7", "192.0.2.1", 40002, 110))
    assert c.recv(100).startswith(b"-ERR [SYS/TEMP]")
    a.sendall(b"USER alice\r\n")
    a.recv(200)
    assert "peer=203.0.113.7:40000" in fe.read_log()
    # a header that is not PROXY v2 from a trusted peer ends the connection
    d = socket.create_connection(("127.0.0.1", port), timeout=10)
    d.sendall(b"PROXY TCP4 203.0.113.9 192.0.2.1 1 2\r\n")
    d.settimeout(10)
    assert d.recv(100) == b""
    for s in (a, b, c, d):
        s.close()


def test_proxy_header_from_untrusted_peer_is_just_bad_input(fe):
    c = Raw(fe.port("pop3"))
    assert c.line().startswith("+OK")
    c.send(proxy_v2_header("203.0.113.7", "192.0.2.1", 40000, 110) + b"\r\n")
    assert c.line().startswith("-ERR")
    assert "peer=203.0.113.7" not in fe.read_log()


def test_ipv6_binding(fe):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = fe.port("pop3") + 3
    fe.ctl("settings", "set", "pop3", f"unencrypted-or-tls-bindings=[::1]:{port}", check=True)
    s = socket.create_connection(("::1", port), timeout=10)
    assert s.recv(100).startswith(b"+OK")
    s.close()


def failed_login_seconds(inst):
    c = Raw(inst.port("pop3", tls=True), use_tls=True, timeout=60)
    c.line()
    times = []
    for _ in range(3):
        c.cmd("USER alice")
        start = time.monotonic()
        c.cmd("PASS wrong")
        times.append(time.monotonic() - start)
    c.close()
    return times


def test_failure_tarpit_grows_per_address_and_spares_trusted_networks(fe):
    fe.ctl("settings", "set", "pop3", "authentication-failure-delay=1", check=True)
    times = failed_login_seconds(fe)
    # 1 s, then 1 + 1, then 1 + 2 as failures from 127.0.0.1 add up
    assert times[0] < 1.8 and times[2] > 2.5, times
    # the account is not locked: the right password still works at once
    c = Raw(fe.port("pop3", tls=True), use_tls=True, timeout=60)
    c.line()
    c.cmd("USER alice")
    start = time.monotonic()
    assert c.cmd("PASS Secret-pw1").startswith("-ERR [SYS/TEMP] Mailbox")
    assert time.monotonic() - start < 1.5
    fe.ctl("settings", "set", "pop3", "trusted-networks=127.0.0.0/8", check=True)
    times = failed_login_seconds(fe)
    assert all(t < 1.8 for t in times), times


def test_pre_login_idle_timeout(fe):
    fe.ctl("settings", "set", "pop3", "pre-authenticated-connection-timeout=30", check=True)
    c = Raw(fe.port("pop3"), timeout=60)
    c.line()
    start = time.monotonic()
    assert c.line().startswith("-ERR Idle timeout")
    assert 29 <= time.monotonic() - start < 40
    assert c.closed()
