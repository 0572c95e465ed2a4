"""POP3 end to end: a client talks to the pop3 front end, which logs in at
the user's back end with a one-time ticket and relays the session; mail
arrives through the lmtp service. Python's poplib and raw sockets, curl and
fetchmail as clients."""

import os
import poplib
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import Instance, deliver, tls_context, wait_until

PASSWORD = "Secret-pw1"


def message(n, extra=b""):
    return (b"From: sender@example.org\r\nTo: alice@example.test\r\n"
            b"Subject: message %d\r\nMessage-ID: <m%d@example.org>\r\n\r\n"
            b"body of message %d\r\n" % (n, n, n)) + extra


@pytest.fixture
def pop(running):
    running.ctl("service", "start", "pop3-backend", "pop3", check=True)
    running.ctl("user", "add", "alice", input=PASSWORD + "\n", check=True)
    return running


def login(inst, user="alice", password=PASSWORD):
    p = poplib.POP3_SSL("127.0.0.1", inst.port("pop3", tls=True), context=tls_context(),
                        timeout=30)
    p.user(user)
    assert p.pass_(password).startswith(b"+OK")
    return p


class Raw:
    def __init__(self, inst):
        raw = socket.create_connection(("127.0.0.1", inst.port("pop3", tls=True)), timeout=30)
        self.sock = tls_context().wrap_socket(raw)
        self.buf = b""
        assert self.line().startswith(b"+OK")

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def multiline(self):
        lines = []
        while (l := self.line()) != b".":
            lines.append(l)
        return lines

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()


def test_every_transaction_command(pop):
    for n in range(1, 4):
        deliver(pop, "alice@example.test", message(n))
    c = Raw(pop)
    c.cmd("USER alice")
    assert c.cmd("PASS " + PASSWORD).startswith(b"+OK")
    stat = c.cmd("STAT").split()
    assert stat[0] == b"+OK" and stat[1] == b"3"
    assert c.cmd("LIST").startswith(b"+OK 3 messages")
    sizes = {int(a): int(b) for a, b in (l.split() for l in c.multiline())}
    assert sorted(sizes) == [1, 2, 3] and sum(sizes.values()) == int(stat[2])
    assert c.cmd("LIST 2") == b"+OK 2 %d" % sizes[2]
    assert c.cmd("LIST 9").startswith(b"-ERR")
    assert c.cmd("LIST x").startswith(b"-ERR")
    assert c.cmd("UIDL") == b"+OK"
    uidls = dict(l.split() for l in c.multiline())
    assert len(set(uidls.values())) == 3
    assert c.cmd("UIDL 1") == b"+OK 1 " + uidls[b"1"]
    # RETR: the size LIST gave is the size of what RETR sends
    assert c.cmd("RETR 2") == b"+OK %d octets" % sizes[2]
    body = b"\r\n".join(c.multiline()) + b"\r\n"
    assert len(body) == sizes[2]
    assert b"Subject: message 2" in body and body.endswith(b"body of message 2\r\n")
    assert c.cmd("TOP 3 0") == b"+OK"
    top = c.multiline()
    assert top[-1] == b"" and b"Subject: message 3" in top
    assert b"body of message 3" not in top
    assert c.cmd("DELE 1") == b"+OK Message 1 deleted"
    assert c.cmd("DELE 1").startswith(b"-ERR")
    assert c.cmd("RETR 1").startswith(b"-ERR")
    assert c.cmd("STAT").split()[1] == b"2"
    assert c.cmd("RSET") == b"+OK"
    assert c.cmd("STAT").split()[1] == b"3"
    assert c.cmd("NOOP") == b"+OK"
    assert c.cmd("DELE 3").startswith(b"+OK")
    assert c.cmd("USER bob").startswith(b"-ERR")
    assert c.cmd("QUIT") == b"+OK Logging out, 1 messages deleted"
    p = login(pop)
    assert p.stat()[0] == 2
    # UIDLs are stable: the survivors keep theirs
    remaining = {l.split()[1] for l in p.uidl()[1]}
    assert remaining == {uidls[b"1"], uidls[b"2"]}
    p.quit()


def test_dropped_connection_deletes_nothing(pop):
    deliver(pop, "alice@example.test", message(1))
    c = Raw(pop)
    c.cmd("USER alice")
    c.cmd("PASS " + PASSWORD)
    assert c.cmd("DELE 1").startswith(b"+OK")
    c.sock.close()
    time.sleep(0.3)
    p = login(pop)
    assert p.stat()[0] == 1
    p.quit()


def test_quit_sent_with_an_immediate_close_still_deletes(pop):
    deliver(pop, "alice@example.test", message(1))
    c = Raw(pop)
    c.cmd("USER alice")
    c.cmd("PASS " + PASSWORD)
    # DELE and QUIT in one packet, then the socket closes without reading
    c.sock.sendall(b"DELE 1\r\nQUIT\r\n")
    c.sock.close()
    assert wait_until(lambda: login(pop).stat()[0] == 0, timeout=5)


def test_pipelined_commands_are_answered_in_order(pop):
    for n in range(1, 3):
        deliver(pop, "alice@example.test", message(n))
    c = Raw(pop)
    c.sock.sendall(f"USER alice\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nUIDL 2\r\nNOOP\r\n"
                   .encode())
    assert c.line() == b"+OK"
    assert c.line().startswith(b"+OK Logged in")
    assert c.line().startswith(b"+OK 2 ")
    assert c.line().startswith(b"+OK")
    assert b"body of message 1" in b"\r\n".join(c.multiline())
    assert c.line().startswith(b"+OK 2 ")
    assert c.line() == b"+OK"


def test_dot_stuffing_and_a_large_message_stream(pop):
    big_line = b"x" * 998 + b"\r\n"
    body = message(1, b".leading dot\r\n..two dots\r\n" + big_line * 5000)
    deliver(pop, "alice@example.test", body)
    p = login(pop)
    resp, lines, octets = p.retr(1)
    got = b"\r\n".join(lines) + b"\r\n"
    assert b"\r\n.leading dot\r\n..two dots\r\n" in got
    assert got.endswith(big_line * 5000)
    size = int(p.list(1).split()[2])
    assert len(got) == size
    p.quit()


def test_session_of_a_switched_off_user_is_kicked(pop):
    deliver(pop, "alice@example.test", message(1))
    c = Raw(pop)
    c.cmd("USER alice")
    c.cmd("PASS " + PASSWORD)
    assert c.cmd("STAT").startswith(b"+OK")
    pop.ctl("user", "set", "alice", "pop3=off", "--kick", check=True)
    c.sock.settimeout(5)
    rest = b""
    try:
        while chunk := c.sock.recv(4096):
            rest += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    # the session is over; the next login is refused
    with pytest.raises(poplib.error_proto):
        login(pop)


def test_backend_accepts_only_front_end_tickets(pop):
    port = pop.port("pop3-backend")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"+OK")
        for line in (b"USER alice\r\n", b"PASS " + PASSWORD.encode() + b"\r\n", b"STAT\r\n",
                     b"XLOGIN alice 127.0.0.1:1 9999999999 " + b"0" * 64 + b"\r\n"):
            f.write(line)
            f.flush()
            assert f.readline().startswith(b"-ERR"), line
    assert "back-end login refused" in pop.read_log()


def test_curl_pop3s(pop):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    deliver(pop, "alice@example.test", message(7))
    r = subprocess.run(["curl", "-sk", "--max-time", "20",
                        f"pop3s://127.0.0.1:{pop.port('pop3', tls=True)}/1",
                        "-u", f"alice:{PASSWORD}"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"body of message 7" in r.stdout
    r = subprocess.run(["curl", "-sk", "--max-time", "20",
                        f"pop3://127.0.0.1:{pop.port('pop3')}/", "--ssl-reqd",
                        "-u", f"alice:{PASSWORD}"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == b"1"


def test_fetchmail_keep(pop, tmp_path):
    if shutil.which("fetchmail") is None:
        pytest.skip("fetchmail is not installed")
    for n in range(1, 4):
        deliver(pop, "alice@example.test", message(n))
    out = tmp_path / "fetched.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 service {pop.port('pop3', tls=True)} protocol POP3 timeout 30\n"
        f"  user alice password {PASSWORD} ssl sslcertck\n"
        f"  sslcertfile {pop.datadir / 'tls' / 'server.crt'} sslcommonname mail.example.test\n"
        f"  keep mda \"/bin/sh -c 'cat >> {out}'\"\n")
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    fetched = out.read_bytes()
    for n in range(1, 4):
        assert b"body of message %d" % n in fetched
    # --keep: still on the server
    assert login(pop).stat()[0] == 3


def test_two_back_ends_behind_one_front_end(pop, tmp_path):
    # a second instance shares the first one's directory and serves bob's
    # mailbox on its own ports
    second = Instance(tmp_path / "second")
    second.init()
    os.remove(second.datadir / "directory.db")
    os.symlink(pop.datadir / "directory.db", second.datadir / "directory.db")
    try:
        second.start()
        second.ctl("service", "start", "pop3-backend", check=True)
        pop.ctl("backend", "add", "mbx2",
                f"pop3=127.0.0.1:{second.port('pop3-backend')}",
                f"lmtp=unix:{second.datadir}/lmtp.sock", check=True)
        pop.ctl("user", "add", "bob", "--backend", "mbx2", input=PASSWORD + "\n", check=True)
        deliver(second, "bob@example.test", message(42))
        deliver(pop, "alice@example.test", message(1))
        # both users through the first instance's front end
        p = login(pop, "bob")
        assert b"body of message 42" in b"\r\n".join(p.retr(1)[1])
        p.quit()
        p = login(pop, "alice")
        assert p.stat()[0] == 1
        assert b"body of message 1" in b"\r\n".join(p.retr(1)[1])
        p.quit()
        # bob's session was served by the second instance's back end
        assert "login user=bob" in second.read_log()
        assert "pop3-backend" not in [l.split("[")[0].split()[-1] for l in
                                      pop.read_log().splitlines() if "login user=bob" in l]
        # a back end that still holds mailboxes cannot be removed
        r = pop.ctl("backend", "del", "mbx2")
        assert r.returncode != 0 and "holds the mailboxes of 1 user" in r.stderr
    finally:
        second.stop()
        second.kill_all()


def test_direct_admin_login_at_the_back_end(pop):
    deliver(pop, "alice@example.test", message(1))
    pop.ctl("user", "add", "boss", "--kind", "admin", input="Admin-pw-1\n", check=True)
    pop.ctl("user", "add", "carol", input="Carol-pw-1\n", check=True)
    port = pop.port("pop3-backend")

    def direct(user, password):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            f = s.makefile("rwb")
            assert f.readline().startswith(b"+OK")
            f.write(f"USER {user}\r\n".encode())
            f.flush()
            first = f.readline()
            if not first.startswith(b"+OK"):
                return first, None
            f.write(f"PASS {password}\r\nSTAT\r\nQUIT\r\n".encode())
            f.flush()
            return f.readline(), f.readline()

    # off by default
    r, _ = direct("alice*boss", "Admin-pw-1")
    assert r.startswith(b"-ERR [AUTH]") and b"direct-admin-login" in r
    pop.ctl("settings", "set", "pop3-backend", "direct-admin-login=true", check=True)
    r, stat = direct("alice*boss", "Admin-pw-1")
    assert r.startswith(b"+OK Logged in"), r
    assert stat.startswith(b"+OK 1 ")
    assert "administrator boss logged in directly as alice" in pop.read_log()
    # an ordinary user cannot, nor a wrong password
    r, _ = direct("alice*carol", "Carol-pw-1")
    assert r.startswith(b"-ERR")
    r, _ = direct("alice*boss", "wrong")
    assert r.startswith(b"-ERR")


def test_protocol_logs_record_commands_without_credentials(pop):
    deliver(pop, "alice@example.test", message(1))
    for service in ("pop3", "pop3-backend"):
        pop.ctl("settings", "set", service, "protocol-log-enabled=true", check=True)
    c = Raw(pop)
    client_port = c.sock.getsockname()[1]
    c.cmd("CAPA")
    c.multiline()
    c.cmd("USER alice")
    assert c.cmd("PASS " + PASSWORD).startswith(b"+OK")
    c.cmd("STAT")
    c.cmd("QUIT")
    c.sock.close()
    time.sleep(0.3)
    front = "".join(p.read_text() for p in (pop.datadir / "logs" / "pop3").glob("*.log"))
    back = "".join(p.read_text() for p in (pop.datadir / "logs" / "pop3-backend").glob("*.log"))
    assert " C USER alice" in front and " C PASS *" in front
    assert " S +OK Logged in." in front
    assert " C STAT" in back and " C XLOGIN *" in back and " C QUIT" in back
    # after the login the back end's lines carry the client's address, not
    # the front end's
    stat = [l for l in back.splitlines() if " C STAT" in l][0]
    assert f" 127.0.0.1:{client_port} C STAT" in stat
    for text in (front, back):
        assert PASSWORD not in text
    # off again: nothing more is written
    pop.ctl("settings", "set", "pop3", "protocol-log-enabled=false", check=True)
    size = sum(p.stat().st_size for p in (pop.datadir / "logs" / "pop3").glob("*.log"))
    c = Raw(pop)
    c.cmd("QUIT")
    time.sleep(0.2)
    assert sum(p.stat().st_size for p in (pop.datadir / "logs" / "pop3").glob("*.log")) == size


def test_connectivity_test_command(pop):
    import json
    # full test: deliver, connect, TLS, log in, find, delete, log out
    r = pop.ctl("test", "pop3", "--user", "alice", "--trust-any-certificate",
                input=PASSWORD + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [l.split() for l in r.stdout.splitlines()[1:]]
    # through the submission service, which runs (else the lmtp socket)
    assert [row[1] for row in rows if row[1] != "test"][:2] == ["Submit", "Connect"]
    assert rows[0][0].startswith("smtp://") and rows[1][0].startswith("pop3://")
    assert all("Success" in l for l in r.stdout.splitlines()[1:])
    # the test message was removed again
    assert login(pop).stat()[0] == 0
    # STARTTLS, JSON
    r = pop.ctl("test", "pop3", "--user", "alice", "--light", "--connection", "tls",
                "--trust-any-certificate", "--json", input=PASSWORD + "\n")
    steps = json.loads(r.stdout)
    assert r.returncode == 0 and [s["scenario"] for s in steps] == \
        ["Connect", "Greeting", "TLS", "Capabilities", "Login", "Logout"]
    assert all(s["result"] == "Success" and s["latency_ms"] >= 0 for s in steps)
    # each failure names its cause, and the rest is skipped
    r = pop.ctl("test", "pop3", "--user", "alice", "--light", "--trust-any-certificate",
                "--json", input="wrong\n")
    steps = {s["scenario"]: s for s in json.loads(r.stdout)}
    assert r.returncode == 1
    assert steps["Login"]["result"] == "Failure" and "[AUTH]" in steps["Login"]["error"]
    assert steps["Logout"]["result"] == "Skipped"
    r = pop.ctl("test", "pop3", "--user", "alice", "--light", "--json", input=PASSWORD + "\n")
    steps = {s["scenario"]: s for s in json.loads(r.stdout)}
    assert r.returncode == 1 and "certificate" in steps["TLS"]["error"]
    r = pop.ctl("test", "pop3", "--user", "alice", "--light", "--connection", "plaintext",
                "--json", input=PASSWORD + "\n")
    steps = {s["scenario"]: s for s in json.loads(r.stdout)}
    assert r.returncode == 1 and "login-type" in steps["Capabilities"]["error"]
    pop.ctl("service", "stop", "pop3", check=True)
    r = pop.ctl("test", "pop3", "--user", "alice", "--light", "--json", input=PASSWORD + "\n")
    steps = {s["scenario"]: s for s in json.loads(r.stdout)}
    assert r.returncode == 1 and "refused" in steps["Connect"]["error"]
