"""The submission service end to end: smtplib, raw sockets and swaks against
the running instance on 587 (STARTTLS) and 465 (implicit TLS). Local mail
is found again over POP3; other mail goes through the queue to a fake
smarthost (a small SMTP sink in this file, on a loopback port)."""

import base64
import hashlib
import hmac
import imaplib
import os
import poplib
import re
import sqlite3
import shutil
import smtplib
import socket
import socketserver
import struct
import subprocess
import threading
import time

import pytest

from conftest import tls_context, wait_until

PASSWORD = "Secret-pw1"


# ---- a fake smarthost ----

class Sink:
    """A minimal SMTP server: records every transaction; answers RCPT and
    the end of DATA with what the test asks for."""

    def __init__(self):
        self.messages = []  # (sender, [rcpts], data bytes)
        self.rcpt_reply = {}  # address -> reply line
        self.data_reply = b"250 2.0.0 Ok: queued"
        self.lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                w = self.wfile
                w.write(b"220 sink ESMTP\r\n")
                sender, rcpts = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.strip().decode("latin-1")
                    up = cmd.upper()
                    if up.startswith("EHLO"):
                        w.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n")
                    elif up.startswith("HELO"):
                        w.write(b"250 sink\r\n")
                    elif up.startswith("MAIL FROM:"):
                        sender = cmd[10:].split()[0].strip("<>")
                        rcpts = []
                        w.write(b"250 2.1.0 Ok\r\n")
                    elif up.startswith("RCPT TO:"):
                        addr = cmd[8:].split()[0].strip("<>")
                        reply = sink.rcpt_reply.get(addr, b"250 2.1.5 Ok")
                        if reply.startswith(b"2"):
                            rcpts.append(addr)
                        w.write(reply + b"\r\n")
                    elif up == "DATA":
                        w.write(b"354 go ahead\r\n")
                        data = b""
                        while True:
                            l = self.rfile.readline()
                            if not l or l == b".\r\n":
                                break
                            data += l[1:] if l.startswith(b".") else l
                        reply = sink.data_reply
                        if reply.startswith(b"2"):
                            with sink.lock:
                                sink.messages.append((sender, rcpts, data))
                        w.write(reply + b"\r\n")
                    elif up == "QUIT":
                        w.write(b"221 bye\r\n")
                        return
                    elif up == "RSET" or up == "NOOP":
                        w.write(b"250 Ok\r\n")
                    else:
                        w.write(b"502 5.5.1 no\r\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


# ---- the instance ----

@pytest.fixture
def sub(running):
    running.ctl("service", "start", "pop3-backend", "pop3", check=True)
    for name, kind in (("alice", "user"), ("bob", "user"), ("gina", "guest"),
                       ("adam", "admin"), ("carl", "user")):
        running.ctl("user", "add", name, "--kind", kind, input=PASSWORD + "\n", check=True)
    running.ctl("user", "set", "carl", "smtp=off", check=True)
    if os.geteuid() == 0:
        # the submission service runs as postern-front and delivers on the
        # lmtp socket: give that group access
        running.ctl("settings", "set", "lmtp", "unix-socket-mode=0660",
                    "unix-socket-group=postern-front", check=True)
    # the submission service starts automatically
    assert wait_until(lambda: _connectable(running.port("submission")), timeout=15)
    return running


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def smtp(inst, user="alice", password=PASSWORD, implicit=False):
    if implicit:
        c = smtplib.SMTP_SSL("127.0.0.1", inst.port("submission", tls=True),
                             context=tls_context(), timeout=30)
        c.ehlo("client.example")
    else:
        c = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
        c.ehlo("client.example")
        c.starttls(context=tls_context())
        c.ehlo("client.example")
    if user is not None:
        c.login(user, password)
    return c


def message(subject="hello", sender="alice@example.test", to="bob@example.test",
            body=b"the body\r\n", extra=b""):
    return (b"From: " + sender.encode() + b"\r\nTo: " + to.encode() +
            b"\r\nSubject: " + subject.encode() + b"\r\n" + extra + b"\r\n" + body)


def pop_messages(inst, user="bob"):
    p = poplib.POP3_SSL("127.0.0.1", inst.port("pop3", tls=True), context=tls_context(),
                        timeout=30)
    p.user(user)
    p.pass_(PASSWORD)
    out = []
    for i in range(1, len(p.list()[1]) + 1):
        out.append(b"\r\n".join(p.retr(i)[1]) + b"\r\n")
    p.quit()
    return out


def imap_login(inst, user="alice"):
    c = imaplib.IMAP4_SSL("127.0.0.1", inst.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    typ, data = c.login(user, PASSWORD)
    assert typ == "OK", data
    return c


def start_imap(inst):
    inst.ctl("service", "start", "imap4-backend", "imap4", check=True)
    assert wait_until(lambda: _connectable(inst.port("imap4", tls=True)), timeout=15)


def sent_folder(c):
    """The name of the folder with SPECIAL-USE \\Sent, or None."""
    typ, lines = c.list()
    assert typ == "OK", lines
    for line in lines:
        m = re.match(rb'\(([^)]*)\) "[^"]*" (.*)$', line)
        if m and b"\\Sent" in m.group(1).split():
            return m.group(2).strip(b'"').decode()
    return None


def imap_messages(inst, user="alice", folder=None):
    """(flags, bytes) of every message in a folder (default: the Sent one)."""
    c = imap_login(inst, user)
    try:
        name = folder if folder is not None else sent_folder(c)
        if name is None:
            return []
        typ, data = c.select(f'"{name}"', readonly=True)
        assert typ == "OK", data
        typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
        assert typ == "OK", data
        out = []
        for item in data:
            if isinstance(item, tuple):
                out.append((item[0], item[1]))
        return out
    finally:
        c.logout()


class Raw:
    """A raw client; tls=True wraps at once (465)."""

    def __init__(self, inst, implicit=True):
        s = socket.create_connection(("127.0.0.1", inst.port("submission", tls=implicit)),
                                     timeout=30)
        self.sock = tls_context().wrap_socket(s) if implicit else s
        self.buf = b""
        assert self.reply()[0] == 220

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError(self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def login(self, user="alice", password=PASSWORD):
        self.cmd("EHLO client.example")
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        code, lines = self.cmd("AUTH PLAIN " + token)
        assert code == 235, lines


# ---- protocol and policy ----

def test_ehlo_keywords_before_and_after_tls(sub):
    c = smtplib.SMTP("127.0.0.1", sub.port("submission"), timeout=30)
    code, text = c.ehlo("client.example")
    assert code == 250
    kw = [l.split()[0].upper() for l in text.decode().splitlines()[1:]]
    assert "STARTTLS" in kw and "AUTH" not in kw
    for k in ("SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES", "CHUNKING",
              "DSN"):
        assert k in kw, (k, kw)
    assert c.esmtp_features["size"] == "36700160"
    # no credentials in the clear under the default login type
    code, _ = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode())
    assert code == 502
    c.starttls(context=tls_context())
    code, text = c.ehlo("client.example")
    kw = [l.split()[0].upper() for l in text.decode().splitlines()[1:]]
    assert "STARTTLS" not in kw and "AUTH" in kw
    assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
    c.login("alice", PASSWORD)
    c.quit()
    # 465: TLS from the first byte, AUTH offered at once
    c = smtp(sub, implicit=True, user=None)
    assert "auth" in c.esmtp_features and "starttls" not in c.esmtp_features
    c.login("alice", PASSWORD)
    c.quit()


def test_auth_required_before_mail(sub):
    c = smtp(sub, user=None)
    code, text = c.mail("alice@example.test")
    assert code == 530 and text.startswith(b"5.7.0"), text
    c.quit()


def test_wrong_password_and_refused_accounts(sub):
    t0 = time.monotonic()
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        smtp(sub, password="wrong")
    assert err.value.smtp_code == 535
    assert time.monotonic() - t0 >= 1.5  # the failure delay
    for user in ("gina", "adam", "carl"):
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            smtp(sub, user=user)
        assert err.value.smtp_code == 525, (user, err.value)
    # AUTH LOGIN works too, with its challenges
    r = Raw(sub)
    r.cmd("EHLO client.example")
    assert r.cmd("AUTH LOGIN") == (334, [b"334 VXNlcm5hbWU6"])
    assert r.cmd(base64.b64encode(b"alice").decode()) == (334, [b"334 UGFzc3dvcmQ6"])
    code, _ = r.cmd(base64.b64encode(PASSWORD.encode()).decode())
    assert code == 235
    code, lines = r.cmd("AUTH PLAIN AGFsaWNlAHg=")
    assert code == 503


def test_sender_must_be_the_user(sub):
    c = smtp(sub)
    code, text = c.mail("bob@example.test")
    assert code == 553 and text.startswith(b"5.7.1"), text
    code, _ = c.mail("<>")
    assert code == 553
    # the From header too
    with pytest.raises(smtplib.SMTPDataError) as err:
        c.sendmail("alice@example.test", ["bob@example.test"],
                   message(sender="Bob <bob@example.test>"))
    assert err.value.smtp_code == 553
    c.quit()
    # send-as lets the administrator allow another address
    sub.ctl("user", "set", "alice", "send-as=sales@example.test", check=True)
    c = smtp(sub)
    assert c.sendmail("sales@example.test", ["bob@example.test"],
                      message(sender="Sales <sales@example.test>")) == {}
    c.quit()


def test_local_delivery_found_over_pop3(sub):
    body = b"line one\r\n.leading dot\r\n..two dots\r\n\r\nend\r\n"
    msg = message(subject="local", body=body, extra=b"Message-ID: <fixed@client>\r\n"
                  b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n")
    c = smtp(sub)
    c.mail("alice@example.test")
    assert c.rcpt("bob@example.test")[0] == 250
    assert c.rcpt("bob+tag@example.test")[0] == 250
    code, text = c.rcpt("nobody@example.test")
    assert code == 550 and text.startswith(b"5.1.1")
    code, text = c.data(msg)
    assert code == 250 and b"delivered" in text, text
    c.quit()
    got = pop_messages(sub, "bob")
    assert len(got) == 1  # bob and bob+tag share one copy
    m = got[0]
    # the submitted message, byte for byte, after the trace fields
    assert m.endswith(msg), m
    assert b"Received: from client.example" in m and b"with ESMTPSA" in m
    assert b"using TLSv1" in m
    assert m.count(b"Message-ID:") == 1 and m.count(b"Date:") == 1


def test_local_delivery_found_over_imap_and_pop3(sub):
    start_imap(sub)
    body = (b"first line\r\n.dot at the start\r\n\r\n\tindented \xc3\xa9t\xc3\xa9\r\n"
            + b"x" * 900 + b"\r\nlast line without much\r\n")
    msg = message(subject="both ways", body=body,
                  extra=b"Message-ID: <both@client>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                  b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["bob@example.test"], msg, ["BODY=8BITMIME"]) == {}
    c.quit()
    got = imap_messages(sub, "bob", folder="INBOX")
    assert len(got) == 1
    over_imap = got[0][1]
    assert over_imap.endswith(msg), over_imap
    assert over_imap.split(b"\r\n\r\n", 1)[1] == body
    # the body part alone, as IMAP serves it
    c = imap_login(sub, "bob")
    c.select("INBOX", readonly=True)
    typ, data = c.fetch("1", "(BODY.PEEK[TEXT])")
    c.logout()
    assert typ == "OK" and data[0][1] == body
    over_pop3 = pop_messages(sub, "bob")
    assert over_pop3 == [over_imap]


def test_message_id_and_date_added(sub):
    c = smtp(sub, implicit=True)
    c.sendmail("alice@example.test", ["bob@example.test"], message(subject="bare"))
    c.quit()
    m = pop_messages(sub, "bob")[0]
    header = m.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nMessage-ID: <" in header and b"\r\nDate: " in header


def test_smuggling_is_not_an_end_of_data(sub):
    r = Raw(sub)
    r.login()
    assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    smuggled = (b"From: alice@example.test\r\nSubject: outer\r\n\r\nbody\r\n"
                b"\n.\n"  # bare LF dot bare LF
                b"MAIL FROM:<bob@example.test>\r\n"
                b"\r.\r"  # bare CR dot bare CR
                b"RCPT TO:<bob@example.test>\r\n"
                b"\r\n.\n"  # CRLF dot bare LF
                b"DATA\r\n"
                b"Subject: smuggled\r\n\r\n")
    r.send(smuggled + b"\r\n.\r\n")
    code, lines = r.reply()
    assert code == 250, lines
    assert r.cmd("QUIT")[0] == 221
    got = pop_messages(sub, "bob")
    assert len(got) == 1
    assert b"Subject: outer" in got[0] and b"MAIL FROM:<bob@example.test>" in got[0]


def test_size_limit_and_too_many_recipients(sub):
    sub.ctl("settings", "set", "submission", "max-message-size=2048", check=True)
    sub.ctl("settings", "set", "submission", "max-recipients=2", check=True)
    c = smtp(sub)
    assert c.esmtp_features["size"] == "2048"
    code, text = c.mail("alice@example.test", ["SIZE=5000"])
    assert code == 552 and text.startswith(b"5.3.4")
    c.mail("alice@example.test")
    assert c.rcpt("bob@example.test")[0] == 250
    assert c.rcpt("alice@example.test")[0] == 250
    code, text = c.rcpt("carl@example.test")
    assert code == 452 and text.startswith(b"4.5.3")
    code, text = c.data(message(body=b"x" * 70 + b"\r\n") * 40)
    assert code == 552 and text.startswith(b"5.3.4"), text
    c.rset()
    c.quit()
    assert pop_messages(sub, "bob") == []


# ---- a copy in the Sent folder ----

def test_sent_copy_per_user(sub):
    start_imap(sub)
    r = sub.ctl("user", "show", "alice", check=True)
    assert "save-sent: default" in r.stdout
    assert re.search(r"^alice\s.*\sdefault$", sub.ctl("user", "list", check=True).stdout, re.M)
    sub.ctl("user", "set", "alice", "--save-sent", "on", check=True)
    assert "save-sent: on" in sub.ctl("user", "show", "alice", check=True).stdout
    assert re.search(r"^alice\s.*\son$", sub.ctl("user", "list", check=True).stdout, re.M)
    refused = sub.ctl("user", "set", "alice", "save-sent=maybe")
    assert refused.returncode == 1 and "save-sent: must be on, off or default" in refused.stderr

    # the client's own Message-ID and Date: the copy is the message, byte for byte
    body = b"hello\r\n.dot\r\n\r\nbye\r\n"
    msg = message(subject="keep a copy", body=body,
                  extra=b"Message-ID: <copy@client>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n")
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    # none: Message-ID and Date are added, and are in the copy too
    bare = message(subject="bare copy", body=b"no ids\r\n")
    assert c.sendmail("alice@example.test", ["bob@example.test"], bare) == {}
    c.quit()
    copies = wait_until(lambda: len(imap_messages(sub)) == 2 and imap_messages(sub), timeout=15)
    assert copies, sub.read_log()[-3000:]
    (flags1, copy1), (flags2, copy2) = copies
    assert copy1 == msg
    assert b"\\Seen" in flags1 and b"\\Seen" in flags2
    assert b"Received:" not in copy2 and b"Return-Path:" not in copy2
    assert copy2.startswith(bare.split(b"\r\n\r\n")[0] + b"\r\n")
    assert b"\r\nMessage-ID: <" in copy2 and b"\r\nDate: " in copy2
    # what bob got is the same message after the trace fields
    inbox = pop_messages(sub, "bob")
    assert inbox[0].endswith(copy1) and inbox[1].endswith(copy2)
    assert sub.ctl("queue", "list", check=True).stdout.count("\n") <= 2  # nothing left queued

    # off: no copy
    sub.ctl("user", "set", "alice", "save-sent=off", check=True)
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["bob@example.test"], message(subject="no copy")) == {}
    c.quit()
    time.sleep(1)
    assert len(imap_messages(sub)) == 2


def test_sent_copy_default_and_folder(sub, sink):
    start_imap(sub)
    # default users follow the service's setting, which starts off
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["bob@example.test"], message(subject="a")) == {}
    c.quit()
    time.sleep(1)
    assert imap_messages(sub) == []
    sub.ctl("settings", "set", "submission", "save-sent=true", check=True)
    sub.ctl("user", "set", "bob", "save-sent=off", check=True)
    # a Sent folder the user removed is made again, with its role
    c = imap_login(sub)
    assert sent_folder(c) == "Sent"
    assert c.delete("Sent")[0] == "OK"
    assert sent_folder(c) is None
    c.logout()
    smarthost(sub, sink)
    c = smtp(sub)
    # a message only to another domain gets its copy too
    out = message(subject="outward", to="x@example.org")
    assert c.sendmail("alice@example.test", ["x@example.org"], out) == {}
    c.quit()
    assert wait_until(lambda: len(imap_messages(sub)) == 1, timeout=15), sub.read_log()[-3000:]
    copy = imap_messages(sub)[0][1]
    assert copy.startswith(out.split(b"\r\n\r\n")[0] + b"\r\nMessage-ID: <")
    assert copy.endswith(b"\r\n\r\nthe body\r\n")
    c = imap_login(sub)
    assert sent_folder(c) == "Sent"
    c.logout()
    assert wait_until(lambda: sink.messages, timeout=15)
    assert sink.messages[0][2].endswith(copy)
    # bob is off, whatever the default
    c = smtp(sub, user="bob")
    assert c.sendmail("bob@example.test", ["alice@example.test"], message(
        subject="from bob", sender="bob@example.test", to="alice@example.test")) == {}
    c.quit()
    time.sleep(1)
    assert imap_messages(sub, "bob") == []


def _lmtp(inst):
    return smtplib.LMTP(str(inst.datadir / "lmtp.sock"), timeout=30)


def _sent_mac(inst, user, data):
    """What authd would answer for this copy: only possible here because the
    test reads the instance's secret."""
    db = sqlite3.connect(str(inst.datadir / "directory.db"))
    secret = db.execute("SELECT value FROM meta WHERE key = 'internal_secret'").fetchone()[0]
    db.close()
    digest = hashlib.sha256(data).hexdigest()
    mac = hmac.new(bytes.fromhex(secret), b"postern-sent-copy\0" + user.encode() + b"\0" +
                   digest.encode(), hashlib.sha256).hexdigest()
    return digest, mac


def test_lmtp_sent_copy_needs_authd(sub):
    """No LMTP client can file mail into a folder without authd's MAC over
    the user and the exact bytes."""
    start_imap(sub)
    data = message(subject="forged copy", body=b"x\r\n")
    with _lmtp(sub) as l:
        code, text = l.ehlo("outside")
        assert code == 250 and b"XSENTCOPY" in text
        assert l.mail("alice@example.test")[0] == 250
        # no parameter value, a malformed one, a made-up MAC
        assert l.rcpt("alice@example.test", ["XSENTCOPY"])[0] == 501
        assert l.rcpt("alice@example.test", ["XSENTCOPY=abc.def"])[0] == 501
        digest = hashlib.sha256(data).hexdigest()
        code, text = l.rcpt("alice@example.test", [f"XSENTCOPY={digest}.{'0' * 64}"])
        assert code == 550 and text.startswith(b"5.7.1"), text
        # a real MAC for alice is not one for bob
        digest, mac = _sent_mac(sub, "alice", data)
        code, text = l.rcpt("bob@example.test", [f"XSENTCOPY={digest}.{mac}"])
        assert code == 550, text
        l.rset()
        # the right MAC with other bytes: refused at the end, nothing stored
        assert l.mail("alice@example.test")[0] == 250
        assert l.rcpt("alice@example.test", [f"XSENTCOPY={digest}.{mac}"])[0] == 250
        code, text = l.data(data.replace(b"x\r\n", b"y\r\n"))
        assert code == 554 and text.startswith(b"5.7.1"), text
        # the right MAC with the right bytes: filed in Sent, \Seen, no trace fields
        assert l.mail("alice@example.test")[0] == 250
        assert l.rcpt("alice@example.test", [f"XSENTCOPY={digest}.{mac}"])[0] == 250
        assert l.data(data)[0] == 250
    got = imap_messages(sub)
    assert [m for _, m in got] == [data]
    assert b"\\Seen" in got[0][0]
    assert imap_messages(sub, folder="INBOX") == []
    # the submission service does not offer the parameter to its clients
    c = smtp(sub)
    assert "xsentcopy" not in c.esmtp_features
    c.mail("alice@example.test")
    code, _ = c.rcpt("alice@example.test", [f"XSENTCOPY={digest}.{mac}"])
    assert code == 555
    c.quit()


# ---- posternctl test smtp ----

def _ctl_test(inst, *args, password=PASSWORD):
    import json
    r = inst.ctl("test", *args, "--json", input=password + "\n")
    try:
        steps = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(r.stdout + r.stderr)
    return r.returncode, steps


def _first(steps):
    """scenario -> its first step (a full test has two Logins, ...)."""
    by = {}
    for s in steps:
        by.setdefault(s["scenario"], s)
    return by


def _inbox_and_sent(inst, user="alice"):
    return imap_messages(inst, user, folder="INBOX"), imap_messages(inst, user)


def test_connectivity_test_smtp(sub):
    start_imap(sub)
    # light: 465 with implicit TLS, 587 with STARTTLS
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--light", "--trust-any-certificate")
    assert rc == 0, steps
    assert [s["scenario"] for s in steps] == ["Connect", "TLS", "Greeting", "Capabilities",
                                              "Login", "Logout"]
    assert all(s["result"] == "Success" and s["protocol"] == "smtp" for s in steps)
    assert steps[0]["server"].endswith(f":{sub.port('submission', tls=True)}")
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--light", "--connection", "tls",
                          "--trust-any-certificate")
    assert rc == 0, steps
    assert [s["scenario"] for s in steps] == ["Connect", "Greeting", "TLS", "Capabilities",
                                              "Login", "Logout"]
    assert steps[0]["server"].endswith(f":{sub.port('submission')}")

    # full: sent, found over IMAP4, deleted; a table a person reads
    r = sub.ctl("test", "smtp", "--user", "alice", "--trust-any-certificate",
                input=PASSWORD + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["SERVER", "SCENARIO", "RESULT"]
    assert all(" Success " in l for l in lines[1:]), r.stdout
    assert any(l.startswith("smtp://") and "Send test message" in l for l in lines)
    assert any(l.startswith("imap4://") and "Find message" in l for l in lines)
    assert any(l.startswith("imap4://") and "Delete message" in l for l in lines)
    assert _inbox_and_sent(sub) == ([], [])

    # the user keeps copies in Sent: that one is removed too
    sub.ctl("user", "set", "alice", "save-sent=on", check=True)
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--trust-any-certificate")
    assert rc == 0, steps
    assert _inbox_and_sent(sub) == ([], [])
    # and the full imap4 test submits its message too (the whole client path)
    rc, steps = _ctl_test(sub, "imap4", "--user", "alice", "--trust-any-certificate")
    assert rc == 0, steps
    assert steps[0]["scenario"] == "Submit test message" and steps[0]["protocol"] == "smtp"
    assert _inbox_and_sent(sub) == ([], [])
    sub.ctl("user", "set", "alice", "save-sent=default", check=True)

    # only POP3 for this user: found over POP3
    sub.ctl("user", "set", "alice", "imap4=off", check=True)
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--trust-any-certificate")
    assert rc == 0, steps
    assert {s["protocol"] for s in steps} == {"smtp", "pop3"}
    assert pop_messages(sub, "alice") == []
    # neither: nothing is sent, and the cause is named
    sub.ctl("user", "set", "alice", "pop3=off", check=True)
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--trust-any-certificate")
    by = _first(steps)
    assert rc == 1 and by["Send test message"]["result"] == "Failure"
    assert "neither IMAP4 nor POP3" in by["Send test message"]["error"]
    assert by["Logout"]["result"] == "Success"
    sub.ctl("user", "set", "alice", "pop3=on", "imap4=on", check=True)


def test_connectivity_test_smtp_failures(sub):
    # a wrong password: the cause, and the rest skipped
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--trust-any-certificate",
                          password="wrong")
    by = _first(steps)
    assert rc == 1 and by["Login"]["result"] == "Failure"
    assert "wrong user name or password" in by["Login"]["error"] and "535" in by["Login"]["error"]
    assert by["Logout"]["result"] == "Skipped" and by["Find message"]["result"] == "Skipped"
    # an account that may not send
    rc, steps = _ctl_test(sub, "smtp", "--user", "carl", "--light", "--trust-any-certificate")
    by = _first(steps)
    assert rc == 1 and "may not send" in by["Login"]["error"]
    # no AUTH before TLS
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--light", "--connection",
                          "plaintext")
    by = _first(steps)
    assert rc == 1 and "login-type" in by["Capabilities"]["error"]
    assert "--connection tls" in by["Capabilities"]["error"]
    # the self-signed certificate, not trusted
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--light")
    by = _first(steps)
    assert rc == 1 and "certificate" in by["TLS"]["error"]
    # the service stopped
    sub.ctl("service", "stop", "submission", check=True)
    rc, steps = _ctl_test(sub, "smtp", "--user", "alice", "--light", "--trust-any-certificate")
    by = _first(steps)
    assert rc == 1 and "refused" in by["Connect"]["error"]
    assert all(s["result"] == "Skipped" for s in steps[1:])
    # without submission, the full pop3 test delivers through the lmtp socket
    rc, steps = _ctl_test(sub, "pop3", "--user", "alice", "--trust-any-certificate")
    assert rc == 0, steps
    assert steps[0]["scenario"] == "Deliver test message" and steps[0]["protocol"] == "lmtp"
    assert steps[0]["server"].endswith("lmtp.sock")


# ---- MX delivery: a tiny DNS server ----

def _dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


class FakeDNS:
    """Answers A, AAAA and MX queries over UDP and TCP on one loopback port
    from self.zone: (name, type) -> list of records, or an int RCODE, or
    "drop" (no answer at all), or ("truncate", records) (UDP answers with
    TC set, TCP with the records). Names not in the zone: NXDOMAIN, unless
    some record exists for the name (then an empty NOERROR answer)."""

    A, MX, AAAA = 1, 15, 28

    def __init__(self):
        self.zone = {}
        self.queries = []  # (name, type, "udp"|"tcp")
        # one port for both: a free UDP port may be taken for TCP
        for _ in range(100):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(16)
        self.closed = False
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def address(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        self.closed = True
        self.udp.close()
        self.tcp.close()

    def _answer(self, query, transport):
        if len(query) < 17:
            return None
        i, labels = 12, []
        while i < len(query) and query[i] != 0:
            labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
            i += 1 + query[i]
        qtype = struct.unpack(">H", query[i + 1:i + 3])[0]
        qend = i + 5
        name = ".".join(labels).lower()
        self.queries.append((name, qtype, transport))
        entry = self.zone.get((name, qtype))
        if entry == "drop":
            return None
        tc = False
        if isinstance(entry, tuple) and entry[0] == "truncate":
            if transport == "udp":
                tc, records = True, []
            else:
                records = entry[1]
        else:
            records = entry
        rcode = 0
        if isinstance(records, int):
            rcode, records = records, []
        elif records is None:
            known = any(n == name for n, _ in self.zone)
            rcode, records = (0 if known else 3), []
        rd = query[2] & 1
        out = query[:2] + bytes([0x80 | (0x02 if tc else 0) | rd, 0x80 | rcode])
        out += struct.pack(">HHHH", 1, len(records), 0, 0) + query[12:qend]
        for rec in records:
            if qtype == self.MX:
                rdata = struct.pack(">H", rec[0]) + _dns_name(rec[1])
            elif qtype == self.A:
                rdata = socket.inet_pton(socket.AF_INET, rec)
            else:
                rdata = socket.inet_pton(socket.AF_INET6, rec)
            out += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
        return out

    def _serve_udp(self):
        while not self.closed:
            try:
                query, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            reply = self._answer(query, "udp")
            if reply is not None:
                try:
                    self.udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self):
        while not self.closed:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    data = b""
                    while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    reply = self._answer(data[2:], "tcp")
                    if reply is not None:
                        conn.sendall(struct.pack(">H", len(reply)) + reply)
                except OSError:
                    pass


@pytest.fixture
def dns():
    d = FakeDNS()
    yield d
    d.close()


def mx_setup(inst, dns, sink):
    """Direct delivery: no smarthost, our DNS server, the sink as port 25."""
    z = dns.zone
    # two MX hosts: the preferred one refuses connections
    z[("mx.example", FakeDNS.MX)] = [(10, "mail.mx.example"), (5, "down.mx.example")]
    z[("down.mx.example", FakeDNS.A)] = ["127.0.0.2"]
    z[("mail.mx.example", FakeDNS.A)] = ["127.0.0.1"]
    # no MX: the domain's own address
    z[("implicit.example", FakeDNS.A)] = ["127.0.0.1"]
    z[("implicit.example", FakeDNS.MX)] = []
    z[("nullmx.example", FakeDNS.MX)] = [(0, ".")]
    z[("servfail.example", FakeDNS.MX)] = 2
    z[("noaddr.example", FakeDNS.MX)] = [(10, "ghost.noaddr.example")]
    z[("big.example", FakeDNS.MX)] = ("truncate", [(10, "mail.mx.example")])
    z[("slow.example", FakeDNS.MX)] = "drop"
    inst.ctl("settings", "set", "submission", f"dns-resolvers={dns.address()}",
             f"mx-port={sink.port}", "queue-retry-interval=1", "queue-max-retry-interval=2",
             check=True)


def test_mx_delivery(sub, dns, sink):
    mx_setup(sub, dns, sink)
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["x@mx.example"], message(to="x@mx.example")) == {}
    assert c.sendmail("alice@example.test", ["y@implicit.example"],
                      message(to="y@implicit.example")) == {}
    assert c.sendmail("alice@example.test", ["z@big.example"], message(to="z@big.example")) == {}
    c.quit()
    assert wait_until(lambda: len(sink.messages) == 3, timeout=20), sub.read_log()[-3000:]
    assert sorted(m[1][0] for m in sink.messages) == ["x@mx.example", "y@implicit.example",
                                                      "z@big.example"]
    assert wait_until(lambda: queued(sub) == [], timeout=10)
    # the preferred MX was tried first; the truncated answer was asked again over TCP
    log = sub.read_log()
    assert "127.0.0.2" in log
    assert ("big.example", FakeDNS.MX, "tcp") in dns.queries
    assert ("mail.mx.example", FakeDNS.AAAA, "udp") in dns.queries


def test_mx_permanent_failures_bounce_at_once(sub, dns, sink):
    mx_setup(sub, dns, sink)
    sub.ctl("settings", "set", "submission", "queue-retry-interval=3600", check=True)
    c = smtp(sub)
    rcpts = ["a@nullmx.example", "b@nxdomain.example", "c@noaddr.example"]
    assert c.sendmail("alice@example.test", rcpts, message(subject="nowhere", to=rcpts[0])) == {}
    c.quit()

    def report():
        return [m for m in pop_messages(sub, "alice") if b"multipart/report" in m]
    got = wait_until(report, timeout=20)
    assert got, sub.read_log()[-3000:]
    dsn = got[0]
    assert b"Final-Recipient: rfc822; a@nullmx.example" in dsn
    assert b"Status: 5.1.10" in dsn and b"null MX" in dsn
    assert b"Status: 5.1.2" in dsn and b"nxdomain.example does not exist" in dsn
    assert b"Status: 5.4.4" in dsn
    assert len(got) == 1
    assert wait_until(lambda: queued(sub) == [], timeout=10)
    assert sink.messages == []


def test_mx_dns_failures_defer(sub, dns, sink):
    mx_setup(sub, dns, sink)
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["d@servfail.example"],
                      message(to="d@servfail.example")) == {}
    c.quit()
    assert wait_until(lambda: len(queued(sub)) == 1, timeout=10)
    qid = queued(sub)[0]
    assert wait_until(lambda: "4.4.3" in sub.ctl("queue", "show", qid).stdout, timeout=15), \
        sub.ctl("queue", "show", qid).stdout
    assert "server failure" in sub.ctl("queue", "show", qid).stdout
    # still queued after more tries; no report
    time.sleep(3)
    assert queued(sub) == [qid]
    assert not [m for m in pop_messages(sub, "alice") if b"multipart/report" in m]
    # the DNS recovers: delivered
    dns.zone[("servfail.example", FakeDNS.MX)] = [(10, "mail.mx.example")]
    sub.ctl("queue", "flush", check=True)
    assert wait_until(lambda: sink.messages, timeout=20)
    assert sink.messages[0][1] == ["d@servfail.example"]
    assert wait_until(lambda: queued(sub) == [], timeout=10)


def test_mx_lookup_does_not_block(sub, dns, sink):
    """A DNS server that never answers holds one message, not the service."""
    mx_setup(sub, dns, sink)
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["e@slow.example"], message(to="e@slow.example")) == {}
    c.quit()
    assert wait_until(lambda: any(q[0] == "slow.example" for q in dns.queries), timeout=10)
    t0 = time.monotonic()
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["bob@example.test", "f@mx.example"],
                      message(subject="meanwhile")) == {}
    c.quit()
    assert time.monotonic() - t0 < 3
    assert wait_until(lambda: sink.messages, timeout=10)
    assert len(pop_messages(sub, "bob")) == 1
    # the silent server's lookup ends as a temporary failure
    assert wait_until(lambda: any("4.4.3" in sub.ctl("queue", "show", q).stdout
                                  for q in queued(sub)), timeout=30)
    assert len(queued(sub)) == 1


# ---- the queue ----

def smarthost(inst, sink):
    inst.ctl("settings", "set", "submission", f"smarthost=127.0.0.1:{sink.port}",
             "queue-retry-interval=1", "queue-max-retry-interval=2", check=True)


def queued(inst):
    r = inst.ctl("queue", "list", check=True)
    return [l.split()[0] for l in r.stdout.splitlines()[1:-1]]


def test_relay_through_the_smarthost(sub, sink):
    smarthost(sub, sink)
    c = smtp(sub)
    msg = message(subject="out", to="x@example.org", body=b".dot\r\nbye\r\n",
                  extra=b"Message-ID: <out@client>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n")
    assert c.sendmail("alice@example.test", ["x@example.org", "bob@example.test"], msg) == {}
    c.quit()
    assert wait_until(lambda: sink.messages, timeout=15)
    sender, rcpts, data = sink.messages[0]
    assert sender == "alice@example.test" and rcpts == ["x@example.org"]
    assert data.endswith(msg)
    assert len(pop_messages(sub, "bob")) == 1
    assert wait_until(lambda: queued(sub) == [], timeout=10)


def test_retry_when_the_smarthost_is_down(sub):
    # a port nobody listens on, then the sink appears there
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sub.ctl("settings", "set", "submission", f"smarthost=127.0.0.1:{port}",
            "queue-retry-interval=1", "queue-max-retry-interval=2", check=True)
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["later@example.org"], message(to="later@example.org")) == {}
    c.quit()
    assert wait_until(lambda: len(queued(sub)) == 1, timeout=10)
    ids = queued(sub)
    show = sub.ctl("queue", "show", ids[0], check=True).stdout
    assert wait_until(lambda: "4.4" in sub.ctl("queue", "show", ids[0]).stdout, timeout=15), show
    sink = Sink()
    try:
        smarthost(sub, sink)
        sub.ctl("queue", "flush", check=True)
        assert wait_until(lambda: sink.messages, timeout=20)
        assert sink.messages[0][1] == ["later@example.org"]
        assert wait_until(lambda: queued(sub) == [], timeout=10)
    finally:
        sink.close()


def test_bounce_on_permanent_failure(sub, sink):
    smarthost(sub, sink)
    sink.rcpt_reply["nosuch@example.org"] = b"550 5.1.1 no such user here"
    c = smtp(sub)
    msg = message(subject="will bounce", to="nosuch@example.org")
    assert c.sendmail("alice@example.test", ["nosuch@example.org"], msg) == {}
    c.quit()

    def report():
        return [m for m in pop_messages(sub, "alice") if b"multipart/report" in m]
    got = wait_until(report, timeout=20)
    assert got, sub.read_log()[-3000:]
    dsn = got[0]
    assert b"report-type=delivery-status" in dsn
    assert b"Final-Recipient: rfc822; nosuch@example.org" in dsn
    assert b"Action: failed" in dsn and b"Status: 5.1.1" in dsn
    assert b"550 5.1.1 no such user here" in dsn
    assert b"Subject: will bounce" in dsn
    assert wait_until(lambda: queued(sub) == [], timeout=10)


def test_queue_survives_a_restart(sub):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sub.ctl("settings", "set", "submission", f"smarthost=127.0.0.1:{port}",
            "queue-retry-interval=3600", check=True)
    c = smtp(sub)
    assert c.sendmail("alice@example.test", ["kept@example.org"], message(to="kept@example.org")) == {}
    c.quit()
    assert wait_until(lambda: len(queued(sub)) == 1, timeout=10)
    before = queued(sub)
    sub.stop()
    sub.kill_all()
    sub.start()
    assert queued(sub) == before
    sink = Sink()
    try:
        smarthost(sub, sink)
        sub.ctl("queue", "flush", check=True)
        assert wait_until(lambda: sink.messages, timeout=20)
        assert len(sink.messages) == 1
        assert wait_until(lambda: queued(sub) == [], timeout=10)
        time.sleep(1)
        assert len(sink.messages) == 1  # sent once
    finally:
        sink.close()


def test_queue_delete(sub):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sub.ctl("settings", "set", "submission", f"smarthost=127.0.0.1:{port}", check=True)
    c = smtp(sub)
    c.sendmail("alice@example.test", ["gone@example.org"], message(to="gone@example.org"))
    c.quit()
    assert wait_until(lambda: len(queued(sub)) == 1, timeout=10)
    qid = queued(sub)[0]
    r = sub.ctl("queue", "delete", qid, check=True)
    assert "deleted" in r.stdout
    assert queued(sub) == []
    assert sub.ctl("queue", "show", qid).returncode == 1


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_starttls_auth(sub):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(sub.port("submission")),
                        "--tls", "--auth", "PLAIN", "--auth-user", "alice",
                        "--auth-password", PASSWORD, "--from", "alice@example.test",
                        "--to", "bob@example.test", "--header", "Subject: from swaks",
                        "--header", "From: alice@example.test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(b"Subject: from swaks" in m for m in pop_messages(sub, "bob"))


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_implicit_tls_auth_login_and_refusals(sub):
    base = ["swaks", "--server", "127.0.0.1", "--from", "alice@example.test",
            "--to", "bob@example.test", "--header", "From: alice@example.test",
            "--auth-user", "alice"]
    # 465: TLS from the first byte, AUTH LOGIN
    r = subprocess.run(base + ["--port", str(sub.port("submission", tls=True)), "--tlsc",
                               "--auth", "LOGIN", "--auth-password", PASSWORD,
                               "--header", "Subject: swaks over 465"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout
    # a wrong password: 535, nothing sent
    r = subprocess.run(base + ["--port", str(sub.port("submission")), "--tls",
                               "--auth", "PLAIN", "--auth-password", "wrong"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "535 5.7.8" in r.stdout, r.stdout
    # no TLS: AUTH is not offered, swaks cannot authenticate
    r = subprocess.run(base + ["--port", str(sub.port("submission")), "--auth", "PLAIN",
                               "--auth-password", PASSWORD],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert "AUTH" not in [l.split()[0].lstrip("<-~ ").split("-")[-1]
                          for l in r.stdout.splitlines() if l.startswith("<-  250")]
    got = pop_messages(sub, "bob")
    assert [m for m in got if b"Subject: swaks over 465" in m] and len(got) == 1
