"""IMAP extensions end to end through the front end: COMPRESS=DEFLATE,
LITERAL-, OBJECTID, SAVEDATE, IMAP4rev2, and APPEND streamed to disk."""

import calendar
import os
import re
import socket
import time
import zlib

import pytest

from conftest import deliver, tls_context
from test_imap import (PASSWORD, Raw, append, fetch_item, fetch_items, fetch_lines, imap,  # noqa: F401
                       message, rss_kib, status, worker_pid)


class Compressed(Raw):
    """A raw client that turns on COMPRESS=DEFLATE after login: raw DEFLATE
    both ways, a sync flush after each command, as RFC 4978 describes."""

    def __init__(self, inst, **kw):
        self.plain = True
        super().__init__(inst, **kw)
        lines = self.cmd("COMPRESS DEFLATE")
        assert status(lines).startswith(b"OK"), lines
        # bytes after the OK line are compressed already
        pending, self.buf = self.buf, b""
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)
        self.plain = False
        self.wire_in = 0
        if pending:
            self.buf = self.decomp.decompress(pending)
            self.wire_in += len(pending)

    def recv(self, n):
        while True:
            chunk = self.sock.recv(n)
            if not chunk:
                return b""
            self.wire_in += len(chunk)
            data = self.decomp.decompress(chunk)
            if data:
                return data

    def line(self):
        if self.plain:
            return super().line()
        while b"\r\n" not in self.buf:
            chunk = self.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        if self.plain:
            return super().read_exact(n)
        parts, have = [self.buf], len(self.buf)
        while have < n:
            chunk = self.recv(262144)
            if not chunk:
                raise EOFError(self.buf)
            parts.append(chunk)
            have += len(chunk)
        buf = b"".join(parts)
        data, self.buf = buf[:n], buf[n:]
        return data

    def send(self, text):
        data = text if isinstance(text, bytes) else text.encode() + b"\r\n"
        if self.plain:
            self.sock.sendall(data)
        else:
            self.sock.sendall(self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH))


def test_compress_deflate_session_large_fetch_and_idle(imap):
    c = Compressed(imap)
    assert b"COMPRESS=DEFLATE" in c.cmd("CAPABILITY")[0]
    # a second COMPRESS is refused, inside the compressed stream
    assert status(c.cmd("COMPRESS DEFLATE")).startswith(b"NO [COMPRESSIONACTIVE]")
    # a large APPEND and FETCH (many chunks, back-pressure through the relay)
    body = b"".join(b"line %d of a compressible message %s\r\n" % (i, b"abc" * 20)
                    for i in range(200000))
    raw = b"From: a@example.org\r\nSubject: big\r\n\r\n" + body
    assert len(raw) > 16 * 1024 * 1024
    append(c, "INBOX", raw)
    for n in range(1, 4):
        deliver(imap, "alice@example.test", message(n))
    lines = c.cmd("SELECT INBOX")
    assert b"* 4 EXISTS" in lines
    c.wire_in = 0
    lines = c.cmd("UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])")
    fl = fetch_lines(lines)
    assert len(fl) == 4
    assert fetch_item(fl[0], "BODY[]") == raw
    assert fetch_items(fl[0])["RFC822.SIZE"] == len(raw)
    for n, l in enumerate(fl[1:], 1):
        assert fetch_item(l, "BODY[]").endswith(message(n))
    # it was compressed on the wire
    assert c.wire_in < len(raw) // 5, c.wire_in
    # IDLE: every notification arrives at once (a sync flush per response)
    c.n += 1
    tag = "t%d" % c.n
    c.send(f"{tag} IDLE")
    assert c.line().startswith(b"+ ")
    c.sock.settimeout(10)
    latencies = []
    for n in range(5, 8):
        start = time.monotonic()
        deliver(imap, "alice@example.test", message(n))
        while c.line() != b"* %d EXISTS" % n:
            pass
        latencies.append(time.monotonic() - start)
    c.send("DONE")
    assert status(c.response(tag)).startswith(b"OK")
    print("IDLE latency under COMPRESS, ms: " + ", ".join("%.1f" % (x * 1000) for x in latencies))
    assert max(latencies) < 2.0
    # pipelined commands in one compressed write
    c.send(b"p1 NOOP\r\np2 FETCH 7 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\np3 LOGOUT\r\n")
    assert status(c.response("p1")).startswith(b"OK")
    assert b"Subject: message 7" in c.response("p2")[0]
    lines = c.response("p3")
    assert lines[0].startswith(b"* BYE") and status(lines).startswith(b"OK")
    # the back end closed; the front end relays its close in order
    c.sock.settimeout(10)
    assert c.sock.recv(100) == b""


def test_compress_decompression_bomb_ends_the_session(imap):
    c = Compressed(imap)
    c.cmd("SELECT INBOX")
    # one line of 72 MiB in about 72 KiB of wire bytes: refused once 64 MiB
    # expanded more than 256 times (the rest is drained before the close,
    # so the goodbye is not lost to a reset)
    comp = c.comp
    c.sock.settimeout(30)
    sent = 0
    chunk = comp.compress(b"t9 NOOP " + b"a" * (1 << 20))
    zeros = b"a" * (1 << 20)
    closed = False
    try:
        c.sock.sendall(chunk)
        for _ in range(71):
            data = comp.compress(zeros)
            if data:
                c.sock.sendall(data)
                sent += len(data)
        c.sock.sendall(comp.flush(zlib.Z_SYNC_FLUSH))
    except OSError:  # the server closed while we were still sending
        closed = True
    lines = []
    try:
        while True:
            lines.append(c.line())
    except (EOFError, OSError):
        closed = True
    assert closed
    assert any(b" BAD " in l for l in lines), lines
    assert lines[-1].startswith(b"* BYE") and b"expands too much" in lines[-1], lines
    # the service is still there
    d = Raw(imap)
    assert status(d.cmd("NOOP")).startswith(b"OK")


def test_compress_corrupt_stream_ends_the_session(imap):
    c = Compressed(imap)
    c.sock.sendall(b"\xff\xff\xff\xff garbage that is not deflate")
    lines = []
    c.sock.settimeout(10)
    try:
        while True:
            lines.append(c.line())
    except (EOFError, ConnectionResetError, zlib.error):
        pass
    assert lines and lines[-1].startswith(b"* BYE") and b"corrupt" in lines[-1], lines


def test_literal_minus_setting(imap):
    # the default is LITERAL+: a large non-synchronising literal is fine
    c = Raw(imap)
    caps = c.cmd("CAPABILITY")[0]
    assert b"LITERAL+" in caps and b"LITERAL-" not in caps
    big = message(1, b"x" * 8000 + b"\r\n")
    assert status(c.cmd(b"APPEND INBOX {%d+}\r\n%s" % (len(big), big))).startswith(b"OK")
    c.cmd("LOGOUT")
    for svc in ("imap4", "imap4-backend"):
        imap.ctl("settings", "set", svc, "non-synchronizing-literals=literal-minus", check=True)
    imap.ctl("service", "restart", "imap4", "imap4-backend", check=True)
    # the greeting before login (front end) and the list after it (back end)
    raw = socket.create_connection(("127.0.0.1", imap.port("imap4", tls=True)), timeout=30)
    sock = tls_context().wrap_socket(raw)
    greeting = sock.recv(4096)
    assert b"LITERAL-" in greeting and b"LITERAL+" not in greeting, greeting
    sock.close()
    c = Raw(imap)
    caps = c.cmd("CAPABILITY")[0]
    assert b"LITERAL-" in caps and b"LITERAL+" not in caps, caps
    small = message(2)
    lines = c.cmd(b"APPEND INBOX {%d+}\r\n%s" % (len(small), small))
    assert status(lines).startswith(b"OK [APPENDUID"), lines
    # up to 4096 bytes is allowed
    edge = message(3, b"y" * (4096 - len(message(3))))
    assert len(edge) == 4096
    assert status(c.cmd(b"APPEND INBOX {4096+}\r\n" + edge)).startswith(b"OK")
    # 4097 bytes: BAD [TOOBIG]; its bytes are read and dropped, the session goes on
    over = message(4, b"z" * (4097 - len(message(4))))
    lines = c.cmd(b"APPEND INBOX {4097+}\r\n" + over)
    assert status(lines).startswith(b"BAD [TOOBIG]"), lines
    # a synchronising literal of any size is still fine
    c.n += 1
    tag = "t%d" % c.n
    c.send(b"%s APPEND INBOX {%d}\r\n" % (tag.encode(), len(big)))
    assert c.line().startswith(b"+")
    c.send(big + b"\r\n")
    assert status(c.response(tag)).startswith(b"OK")
    lines = c.cmd("STATUS INBOX (MESSAGES)")
    assert b"(MESSAGES 4)" in lines[0], lines
    # before login the front end refuses a large non-synchronising literal:
    # its bytes are dropped, the session goes on
    d = Raw(imap, user=None)
    d.send(b"a LOGIN {5000+}\r\n" + b"u" * 5000 + b" x\r\n")
    assert d.line().startswith(b"a BAD [TOOBIG]")
    assert status(d.cmd("NOOP")).startswith(b"OK")
    # one past what can be dropped (max-command-size) ends the connection
    d.send(b"b LOGIN {20000+}\r\n")
    lines = []
    try:
        while True:
            lines.append(d.line())
    except (EOFError, OSError):
        pass
    assert lines and lines[-1].startswith(b"* BYE"), lines


def test_objectid_mailboxid_emailid_threadid(imap):
    c = Raw(imap)
    caps = c.cmd("CAPABILITY")[0]
    assert b" OBJECTID" in caps
    lines = c.cmd("CREATE Projects")
    m = re.match(rb"OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\]", status(lines))
    assert m, lines
    created = m.group(1)
    lines = c.cmd("STATUS Projects (MAILBOXID MESSAGES)")
    assert lines[0] == b"* STATUS Projects (MESSAGES 0 MAILBOXID (%s))" % created, lines
    lines = c.cmd("SELECT Projects")
    assert b"* OK [MAILBOXID (%s)] Ok" % created in lines, lines
    c.cmd("UNSELECT")
    # RENAME keeps it; a new folder gets another; delete + create gives a new one
    c.cmd("RENAME Projects Work")
    assert b"MAILBOXID (%s)" % created in c.cmd("STATUS Work (MAILBOXID)")[0]
    c.cmd("CREATE Projects")
    other = re.search(rb"MAILBOXID \((\S+)\)", c.cmd("STATUS Projects (MAILBOXID)")[0]).group(1)
    assert other != created
    lines = c.cmd('LIST "" "*" RETURN (STATUS (MAILBOXID))')
    assert any(l == b"* STATUS Work (MAILBOXID (%s))" % created for l in lines), lines
    # EMAILID: unique per message, kept by COPY and MOVE, stable across sessions
    for n in range(1, 4):
        append(c, "INBOX", message(n))
    c.cmd("SELECT INBOX")
    lines = fetch_lines(c.cmd("FETCH 1:* (UID EMAILID THREADID)"))
    ids = [fetch_items(l)["EMAILID"][0] for l in lines]
    assert len(set(ids)) == 3 and all(re.fullmatch(rb"[A-Za-z0-9_-]{1,255}", i) for i in ids)
    assert all(fetch_items(l)["THREADID"] is None for l in lines)
    c.cmd("UID COPY 1 Work")
    c.cmd("UID MOVE 2 Work")
    c.cmd("LOGOUT")
    d = Raw(imap)
    d.cmd("SELECT INBOX")
    assert fetch_items(fetch_lines(d.cmd("UID FETCH 3 (EMAILID)"))[0])["EMAILID"][0] == ids[2]
    assert d.cmd("SEARCH EMAILID %s" % ids[0].decode())[0] == b"* SEARCH 1"
    assert d.cmd("SEARCH EMAILID Mnosuchid")[0] == b"* SEARCH"
    assert d.cmd("SEARCH THREADID T123")[0] == b"* SEARCH"
    d.cmd("SELECT Work")
    moved = [fetch_items(l)["EMAILID"][0] for l in fetch_lines(d.cmd("FETCH 1:* (EMAILID)"))]
    assert moved == [ids[0], ids[1]]
    assert b"MAILBOXID (%s)" % created in d.cmd("STATUS Work (MAILBOXID)")[0]


def test_savedate_fetch_and_search(imap):
    c = Raw(imap)
    assert b" SAVEDATE" in c.cmd("CAPABILITY")[0]
    before = time.time()
    # an old internal date: SAVEDATE is still the time it was saved
    raw = message(1)
    lines = c.cmd(b'APPEND INBOX "01-Jan-2001 10:00:00 +0000" {%d+}\r\n%s' % (len(raw), raw))
    assert status(lines).startswith(b"OK")
    c.cmd("CREATE Old")
    c.cmd("SELECT INBOX")
    it = fetch_items(fetch_lines(c.cmd("FETCH 1 (INTERNALDATE SAVEDATE)"))[0])
    assert it["INTERNALDATE"].strip().startswith(b"1-Jan-2001")
    stamp, offset = it["SAVEDATE"].decode().strip().rsplit(" ", 1)
    saved = calendar.timegm(time.strptime(stamp, "%d-%b-%Y %H:%M:%S"))
    saved -= (int(offset[1:3]) * 3600 + int(offset[3:5]) * 60) * (1 if offset[0] == "+" else -1)
    assert abs(saved - before) < 120, (it, before)
    today = time.strftime("%d-%b-%Y", time.gmtime())
    assert c.cmd("SEARCH SAVEDON %s" % today)[0] == b"* SEARCH 1"
    assert c.cmd("SEARCH SAVEDSINCE %s" % today)[0] == b"* SEARCH 1"
    assert c.cmd("SEARCH SAVEDBEFORE %s" % today)[0] == b"* SEARCH"
    assert c.cmd("SEARCH ON 1-Jan-2001")[0] == b"* SEARCH 1"
    assert c.cmd("SEARCH SAVEDBEFORE 1-Jan-2030 SAVEDATESUPPORTED")[0] == b"* SEARCH 1"


def test_status_size_deleted_and_deleted_storage(imap):
    c = Raw(imap)
    sizes = []
    for n in range(1, 4):
        raw = message(n, b"p" * (3000 * n))
        sizes.append(len(raw))
        append(c, "INBOX", raw)
    c.cmd("SELECT INBOX")
    c.cmd("STORE 2:3 +FLAGS (\\Deleted)")
    lines = c.cmd("STATUS INBOX (MESSAGES SIZE DELETED DELETED-STORAGE)")
    assert lines[0] == b"* STATUS INBOX (MESSAGES 3 DELETED 2 SIZE %d DELETED-STORAGE %d)" % (
        sum(sizes), (sizes[1] + sizes[2] + 1023) // 1024), lines


def test_imap4rev2_behaviour_after_enable(imap):
    for n in range(1, 4):
        deliver(imap, "alice@example.test", message(n))
    # rev1 first: RECENT, UNSEEN and SEARCH as before
    c = Raw(imap)
    caps = c.cmd("CAPABILITY")[0]
    assert b"IMAP4rev1" in caps and b"IMAP4rev2" in caps
    lines = c.cmd("SELECT INBOX")
    assert any(l.endswith(b" RECENT") for l in lines), lines
    assert any(b"[UNSEEN 1]" in l for l in lines), lines
    assert c.cmd("SEARCH ALL")[0] == b"* SEARCH 1 2 3"
    c.cmd("LOGOUT")
    c = Raw(imap)
    c.cmd("CREATE INBOX/Sub")
    assert c.cmd("ENABLE IMAP4rev2")[0] == b"* ENABLED IMAP4rev2"
    assert c.cmd("ENABLE IMAP4rev2")[0] == b"* ENABLED"
    lines = c.cmd("SELECT INBOX")
    assert b"* 3 EXISTS" in lines
    assert not any(b"RECENT" in l or b"[UNSEEN" in l for l in lines), lines
    assert any(re.fullmatch(rb'\* LIST \(\\HasChildren( \\Subscribed)?\) "/" INBOX', l)
               for l in lines), lines
    assert any(l.startswith(b"* OK [UIDVALIDITY ") for l in lines)
    assert any(l.startswith(b"* OK [UIDNEXT 4]") for l in lines)
    assert any(l.startswith(b"* OK [PERMANENTFLAGS ") for l in lines)
    flags = fetch_items(fetch_lines(c.cmd("FETCH 1 (FLAGS)"))[0])["FLAGS"]
    assert b"\\Recent" not in (flags or [])
    # SEARCH answers with ESEARCH, UID SEARCH with the UID indicator
    t = "t%d" % (c.n + 1)
    assert c.cmd("SEARCH ALL")[0] == b'* ESEARCH (TAG "%s") ALL 1:3' % t.encode()
    t = "t%d" % (c.n + 1)
    assert c.cmd("UID SEARCH 2:3")[0] == b'* ESEARCH (TAG "%s") UID ALL 2:3' % t.encode()
    t = "t%d" % (c.n + 1)
    assert c.cmd("SEARCH SUBJECT nothing-like-this")[0] == b'* ESEARCH (TAG "%s")' % t.encode()
    t = "t%d" % (c.n + 1)
    assert c.cmd("SEARCH RETURN (COUNT) ALL")[0] == b'* ESEARCH (TAG "%s") COUNT 3' % t.encode()
    # nothing is recent: RECENT and NEW find nothing, OLD everything
    lines = c.cmd("SEARCH RECENT")
    assert not re.search(rb"ALL", lines[0]), lines
    assert b"ALL 1:3" in c.cmd("SEARCH OLD")[0]
    # a new message: EXISTS without RECENT
    deliver(imap, "alice@example.test", message(4))
    deadline = time.monotonic() + 10
    lines = c.cmd("NOOP")
    while b"* 4 EXISTS" not in lines and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = c.cmd("NOOP")
    assert b"* 4 EXISTS" in lines and not any(b"RECENT" in l for l in lines), lines
    # STATUS: SIZE and DELETED are there, RECENT is not
    lines = c.cmd("STATUS INBOX/Sub (MESSAGES RECENT DELETED SIZE)")
    assert lines[0] == b"* STATUS INBOX/Sub (MESSAGES 0 DELETED 0 SIZE 0)", lines
    # selecting another mailbox says the first was closed
    lines = c.cmd("EXAMINE INBOX/Sub")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed", lines
    assert any(re.fullmatch(rb'\* LIST \(\\HasNoChildren( \\Subscribed)?\) "/" INBOX/Sub', l)
               for l in lines), lines
    # a rev1 session at the same time still sees RECENT
    d = Raw(imap)
    lines = d.cmd("SELECT INBOX")
    assert any(l.endswith(b" RECENT") for l in lines)
    # RENAME: the new name in a LIST with OLDNAME (RFC 9051 6.3.6), for
    # IMAP4rev2 only
    c.cmd("CREATE Projects/2026")
    lines = c.cmd('RENAME Projects "Done projects"')
    assert status(lines).startswith(b"OK"), lines
    assert len(lines) == 2 and re.fullmatch(
        rb'\* LIST \(\\HasChildren\) "/" "Done projects" \("OLDNAME" \("?Projects"?\)\)',
        lines[0]), lines
    d.cmd("CREATE Drafts/x")
    lines = d.cmd("RENAME Drafts/x Drafts/y")
    assert len(lines) == 1 and status(lines).startswith(b"OK"), lines


def test_large_append_goes_to_disk_with_bounded_memory(imap):
    c = Raw(imap)
    c.cmd("SELECT INBOX")
    pid = worker_pid(imap, "imap4-backend")
    base = rss_kib(pid)
    line = b"a line of a large appended message, to the end of the line...\r\n"
    size = 30 * 1024 * 1024
    head = b"From: a@example.org\r\nSubject: large append\r\n\r\n"
    count = (size - len(head)) // len(line)
    total = len(head) + count * len(line)
    c.n += 1
    tag = "t%d" % c.n
    c.send(b"%s APPEND INBOX {%d}\r\n" % (tag.encode(), total))
    assert c.line().startswith(b"+")
    peak = base
    c.sock.sendall(head)
    block = line * 4096
    sent = 0
    while sent < count:
        k = min(4096, count - sent)
        c.sock.sendall(block if k == 4096 else line * k)
        sent += k
        if sent % (4096 * 16) == 0:
            peak = max(peak, rss_kib(pid))
    c.send(b"\r\n")
    lines = c.response(tag)
    assert status(lines).startswith(b"OK [APPENDUID"), lines
    peak = max(peak, rss_kib(pid))
    print("imap4-backend RSS: %d KiB before, peak %d KiB during a %d MiB APPEND" %
          (base, peak, total >> 20))
    it = fetch_items(fetch_lines(c.cmd("FETCH 1 (RFC822.SIZE BODY.PEEK[HEADER])"))[0])
    assert it["RFC822.SIZE"] == total
    lines = c.cmd("FETCH 1 (BODY.PEEK[]<%d.200>)" % (total - 200))
    assert fetch_item(fetch_lines(lines)[0], "BODY[]<%d>" % (total - 200)) == (line * 4)[-200:]
    # freed memory stays in the sanitizer's quarantine: RSS says nothing there
    if b"libasan" not in open(f"/proc/{pid}/maps", "rb").read():
        assert peak - base < 8 * 1024, (base, peak)


def test_multiappend_is_all_or_nothing(imap):
    imap.ctl("user", "add", "carol", "--quota", "1M", input=PASSWORD + "\n", check=True)
    c = Raw(imap, user="carol")
    small = message(1)
    big = message(2, b"q" * (700 * 1024))
    # each fits alone; together they pass the quota: nothing is appended
    lines = c.cmd(b"APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s" % (
        len(small), small, len(big), big, len(big), big))
    assert status(lines).startswith(b"NO [OVERQUOTA]"), lines
    lines = c.cmd("STATUS INBOX (MESSAGES UIDNEXT)")
    assert lines[0].startswith(b"* STATUS INBOX (MESSAGES 0 "), lines
    lines = c.cmd(b"APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s" % (len(small), small, len(big), big))
    assert status(lines).startswith(b"OK [APPENDUID"), lines
    c.cmd("SELECT INBOX")
    got = [fetch_item(l, "BODY[]") for l in fetch_lines(c.cmd("FETCH 1:* (BODY.PEEK[])"))]
    assert got == [small, big]
    # a command that fails after its messages arrived leaves no files behind
    lines = c.cmd(b"APPEND NoSuchFolder {%d+}\r\n%s" % (len(small), small))
    assert status(lines).startswith(b"NO [TRYCREATE]"), lines
    tmp = [p for p in (imap.datadir / "mail").rglob("tmp/*") if p.is_file()]
    assert tmp == [], tmp


def test_curl_over_imap_with_starttls_and_plain(imap):
    import shutil
    import subprocess
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    deliver(imap, "alice@example.test", message(7))
    url = f"imap://127.0.0.1:{imap.port('imap4')}"
    # STARTTLS on the plain port (the default login-type wants TLS)
    r = subprocess.run(["curl", "-sk", "--ssl-reqd", "--max-time", "20", url + "/INBOX;UID=1",
                        "-u", f"alice:{PASSWORD}"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"body of message 7" in r.stdout
    # without TLS the login is refused while plaintext logins are off...
    r = subprocess.run(["curl", "-s", "--max-time", "20", url + "/", "-u",
                        f"alice:{PASSWORD}"], capture_output=True, timeout=30)
    assert r.returncode != 0
    # ...and works once an administrator allows them
    imap.ctl("settings", "set", "imap4", "login-type=plain-text-login", check=True)
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run(["curl", "-s", "--max-time", "20", url + "/INBOX?ALL", "-u",
                            f"alice:{PASSWORD}"], capture_output=True, timeout=30)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.returncode == 0, r.stderr
    assert b"SEARCH 1" in r.stdout, r.stdout
