"""IMAP extensions end to end through the front end: COMPRESS=DEFLATE,
LITERAL-, OBJECTID, SAVEDATE, IMAP4rev2, and APPEND streamed to disk."""

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
