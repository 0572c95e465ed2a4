"""IMAP end to end: clients talk to the imap4 front end, which logs in at
the user's imap4-backend with a one-time ticket and relays the session;
mail arrives through the lmtp service. Python's imaplib and raw sockets,
curl and mbsync as clients."""

import email
import os
import email.policy
import imaplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import deliver, tls_context
from http_client import HASHES

PASSWORD = "Secret-pw1"


def message(n, extra=b""):
    return (b"From: Sender <sender@example.org>\r\nTo: alice@example.test\r\n"
            b"Subject: message %d\r\nMessage-ID: <m%d@example.org>\r\n"
            b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n"
            b"body of message %d\r\n" % (n, n, n)) + extra


@pytest.fixture
def imap(running):
    running.ctl("service", "start", "imap4-backend", "imap4", check=True)
    running.ctl("user", "add", "alice", input=PASSWORD + "\n", check=True)
    return running


def login(inst, user="alice", password=PASSWORD):
    c = imaplib.IMAP4_SSL("127.0.0.1", inst.port("imap4", tls=True), ssl_context=tls_context(),
                          timeout=30)
    typ, data = c.login(user, password)
    assert typ == "OK", data
    return c


def ok(result):
    typ, data = result
    assert typ == "OK", data
    return data


def status(lines):
    """The tagged answer without its tag."""
    return lines[-1].split(b" ", 1)[1]


class Raw:
    """A raw IMAP client over TLS to the front end."""

    def __init__(self, inst, user="alice", password=PASSWORD):
        raw = socket.create_connection(("127.0.0.1", inst.port("imap4", tls=True)), timeout=30)
        self.sock = tls_context().wrap_socket(raw)
        self.buf = b""
        self.n = 0
        assert self.line().startswith(b"* OK")
        if user is not None:
            lines = self.cmd(f"LOGIN {user} {password}")
            assert lines[-1].split()[1] == b"OK", lines

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        parts, have = [self.buf], len(self.buf)
        while have < n:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise EOFError(self.buf)
            parts.append(chunk)
            have += len(chunk)
        buf = b"".join(parts)
        data, self.buf = buf[:n], buf[n:]
        return data

    def send(self, text):
        self.sock.sendall(text if isinstance(text, bytes) else text.encode() + b"\r\n")

    def response(self, tag):
        """Lines up to the tagged one; literals are inlined."""
        lines = []
        while True:
            line = self.line()
            m = re.search(rb"\{(\d+)\}$", line)
            while m:
                line += b"\r\n" + self.read_exact(int(m.group(1)))
                rest = self.line()
                line += rest
                m = re.search(rb"\{(\d+)\}$", rest)
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, text):
        self.n += 1
        tag = "t%d" % self.n
        if isinstance(text, bytes):
            self.send(tag.encode() + b" " + text + b"\r\n")
        else:
            self.send(f"{tag} {text}")
        return self.response(tag)


def test_login_capability_select_fetch(imap):
    for n in range(1, 4):
        deliver(imap, "alice@example.test", message(n))
    c = Raw(imap)
    caps = c.cmd("CAPABILITY")
    assert caps[0].startswith(b"* CAPABILITY IMAP4rev1")
    assert b"IDLE" in caps[0] and b"UIDPLUS" in caps[0]
    lines = c.cmd("SELECT INBOX")
    assert b"* 3 EXISTS" in lines
    assert any(l.startswith(b"* OK [UIDVALIDITY ") for l in lines)
    assert any(l.startswith(b"* OK [UIDNEXT 4]") for l in lines)
    assert status(lines).startswith(b"OK [READ-WRITE]")
    lines = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE)")
    assert len(lines) == 4 and status(lines).startswith(b"OK")
    lines = c.cmd("FETCH 2 BODY[]")
    assert b"body of message 2" in lines[0]
    assert b"\\Seen" in lines[0]
    assert c.cmd("LOGOUT")[0].startswith(b"* BYE")


# ---- an IMAP s-expression reader for BODYSTRUCTURE and ENVELOPE ----

def parse_sexp(data, pos=0):
    """(value, next position) of one IMAP value: list, string, number, NIL."""
    while data[pos:pos + 1] == b" ":
        pos += 1
    c = data[pos:pos + 1]
    if c == b"(":
        items, pos = [], pos + 1
        while True:
            while data[pos:pos + 1] == b" ":
                pos += 1
            if data[pos:pos + 1] == b")":
                return items, pos + 1
            item, pos = parse_sexp(data, pos)
            items.append(item)
    if c == b'"':
        out, pos = b"", pos + 1
        while data[pos:pos + 1] != b'"':
            if data[pos:pos + 1] == b"\\":
                pos += 1
            out += data[pos:pos + 1]
            pos += 1
        return out, pos + 1
    if c == b"~":
        pos += 1
        c = b"{"
    if c == b"{":
        end = data.index(b"}", pos)
        n = int(data[pos + 1:end])
        start = end + 3
        return data[start:start + n], start + n
    m = re.match(rb"[^ ()]+", data[pos:])
    tok = m.group(0)
    pos += len(tok)
    if tok.upper() == b"NIL":
        return None, pos
    if tok.isdigit():
        return int(tok), pos
    return tok, pos


def fetch_items(line):
    """The items of an untagged FETCH line as a dict (keys upper-cased)."""
    i = line.index(b"FETCH (") + 7
    items = {}
    while True:
        while line[i:i + 1] == b" ":
            i += 1
        if line[i:i + 1] == b")":
            return items
        j = i
        while line[j:j + 1] not in (b" ", b"["):
            j += 1
        if line[j:j + 1] == b"[":
            j = line.index(b"]", j) + 1
            if line[j:j + 1] == b"<":
                j = line.index(b">", j) + 1
        key = line[i:j].decode().upper()
        value, i = parse_sexp(line, j + 1)
        items[key] = value


def fetch_item(line, name):
    return fetch_items(line)[name.upper()]


def expected_structure(part):
    """What BODYSTRUCTURE must say about a part, from Python's email parse."""
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        return ("MULTIPART", part.get_content_subtype().upper(),
                [expected_structure(p) for p in part.get_payload()])
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()[0]
        return ("MESSAGE", "RFC822", inner["Subject"], expected_structure(inner))
    body = part.get_payload(decode=False)
    return (part.get_content_maintype().upper(), part.get_content_subtype().upper(),
            (part.get_content_charset() or "us-ascii").lower(),
            (part.get("Content-Transfer-Encoding") or "7BIT").upper(),
            len(body.encode()))


def actual_structure(bs):
    if isinstance(bs[0], list):
        children = []
        for b in bs:
            if not isinstance(b, list):
                break
            children.append(b)
        subtype = bs[len(children)].decode().upper()
        return ("MULTIPART", subtype, [actual_structure(c) for c in children])
    t, st = bs[0].decode().upper(), bs[1].decode().upper()
    if (t, st) == ("MESSAGE", "RFC822"):
        env = bs[7]
        return ("MESSAGE", "RFC822", env[1].decode(), actual_structure(bs[8]))
    params = bs[2] or []
    pd = {params[i].decode().lower(): params[i + 1].decode() for i in range(0, len(params), 2)}
    return (t, st, pd.get("charset", "us-ascii").lower(), bs[5].decode().upper(), bs[6])


def mime_messages():
    """Plain, alternative, mixed with an attachment, nested message/rfc822."""
    plain = (b"From: a@example.org\r\nTo: alice@example.test\r\nSubject: plain\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nworld\r\n")
    alt = (b"From: a@example.org\r\nTo: alice@example.test\r\nSubject: alternative\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"XX\"\r\n\r\n"
           b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
           b"plain text\r\n--XX\r\nContent-Type: text/html; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9</p>\r\n"
           b"--XX--\r\n")
    attachment = bytes(range(256)) * 40
    import base64
    b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    mixed = (b"From: a@example.org\r\nTo: alice@example.test\r\nSubject: mixed\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"MM\"\r\n\r\n"
             b"--MM\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
             b"--MM\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
             b"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--MM--\r\n")
    nested = (b"From: a@example.org\r\nTo: alice@example.test\r\nSubject: nested\r\n"
              b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"OUT\"\r\n\r\n"
              b"--OUT\r\nContent-Type: text/plain\r\n\r\nforwarded below\r\n"
              b"--OUT\r\nContent-Type: message/rfc822\r\n\r\n" + alt + b"\r\n--OUT--\r\n")
    return {"plain": plain, "alternative": alt, "mixed": mixed, "nested": nested}, attachment


def append(c, folder, raw, flags=""):
    lines = c.cmd(f"APPEND {folder} {flags}{{{len(raw)}+}}\r\n".encode() + raw)
    assert status(lines).startswith(b"OK [APPENDUID"), lines
    return int(status(lines).split(b"]")[0].split()[-1])


def fetch_lines(lines):
    return [l for l in lines if re.match(rb"\* \d+ FETCH ", l)]


def test_session_commands_and_states(imap):
    c = Raw(imap)
    assert c.cmd("NOOP")[-1].endswith(b"NOOP completed")
    lines = c.cmd('ID ("name" "test")')
    assert lines[0].startswith(b'* ID ("name" "postern"')
    assert c.cmd("ENABLE CONDSTORE")[0] == b"* ENABLED CONDSTORE"
    assert c.cmd("NAMESPACE")[0] == b'* NAMESPACE (("" "/")) NIL NIL'
    # commands of the selected state need a mailbox
    assert status(c.cmd("FETCH 1 FLAGS")).startswith(b"BAD")
    assert status(c.cmd("CLOSE")).startswith(b"BAD")
    assert status(c.cmd("SELECT nosuch")).startswith(b"NO [NONEXISTENT]")
    assert status(c.cmd("EXAMINE INBOX")).startswith(b"OK [READ-ONLY]")
    assert status(c.cmd("STORE 1:* +FLAGS (\\Seen)")).startswith(b"NO [READ-ONLY]")
    assert status(c.cmd("FETCH 1:* FLAGS")).startswith(b"BAD")  # empty mailbox
    assert status(c.cmd("CHECK")).startswith(b"OK")
    assert status(c.cmd("UNSELECT")).startswith(b"OK")
    assert status(c.cmd("CHECK")).startswith(b"BAD")
    assert status(c.cmd("FROBNICATE")).startswith(b"BAD")
    assert status(c.cmd("LOGIN a b")).startswith(b"BAD")  # already logged in
    lines = c.cmd("LOGOUT")
    assert lines[0] == b"* BYE Logging out" and status(lines).startswith(b"OK")


def test_repeated_bad_commands_end_the_session(imap):
    c = Raw(imap)
    for _ in range(9):
        assert status(c.cmd("BOGUS")).startswith(b"BAD")
    c.send("x BOGUS")
    assert c.line().startswith(b"x BAD")
    assert c.line().startswith(b"* BYE")


def test_command_too_long(imap):
    c = Raw(imap)
    c.send("x SELECT " + "a" * 20000)
    assert c.line().startswith(b"* BAD")
    assert status(c.cmd("NOOP")).startswith(b"OK")


def test_list_create_rename_delete_subscribe_status(imap):
    c = Raw(imap)
    lines = c.cmd('LIST "" "*"')
    names = {l.rsplit(b" ", 1)[1]: l for l in lines[:-1]}
    assert set(names) >= {b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"}
    assert b"\\Sent" in names[b"Sent"] and b"\\HasNoChildren" in names[b"Sent"]
    assert c.cmd('LIST "" ""')[0] == b'* LIST (\\Noselect) "/" ""'
    assert status(c.cmd("CREATE Work/2024/Q1")).startswith(b"OK")
    assert status(c.cmd("CREATE Work")).startswith(b"NO [ALREADYEXISTS]")
    assert status(c.cmd("CREATE INBOX")).startswith(b"NO [ALREADYEXISTS]")
    lines = c.cmd('LIST "" "Work/%"')
    assert lines[0] == b'* LIST (\\HasChildren) "/" Work/2024'
    lines = c.cmd('LIST "Work/" "%"')
    assert lines[0] == b'* LIST (\\HasChildren) "/" Work/2024'
    lines = c.cmd('LIST "" "%"')
    assert not any(b"Work/2024" in l for l in lines)
    # international names travel as modified UTF-7
    assert status(c.cmd('CREATE "Entw&APw-rfe"')).startswith(b"OK")
    assert any(l.endswith(b'"Entw&APw-rfe"') or l.endswith(b"Entw&APw-rfe")
               for l in c.cmd('LIST "" "Entw*"'))
    assert status(c.cmd("RENAME Work/2024/Q1 Work/2024/Q2")).startswith(b"OK")
    assert status(c.cmd("RENAME nosuch other")).startswith(b"NO [NONEXISTENT]")
    assert status(c.cmd("RENAME Work/2024/Q2 Sent")).startswith(b"NO")
    assert status(c.cmd("DELETE Work")).startswith(b"NO [HASCHILDREN]")
    assert status(c.cmd("DELETE INBOX")).startswith(b"NO")
    assert status(c.cmd("DELETE Work/2024/Q2")).startswith(b"OK")
    assert status(c.cmd("DELETE Work/2024/Q2")).startswith(b"NO [NONEXISTENT]")
    # CREATE-SPECIAL-USE, LIST-EXTENDED selection and return options
    assert status(c.cmd("CREATE Old (USE (\\Archive))")).startswith(b"OK")
    assert status(c.cmd("CREATE Odd (USE (\\Important))")).startswith(b"NO [USEATTR]")
    lines = c.cmd('LIST (SPECIAL-USE) "" "*"')
    assert any(l.endswith(b" Old") and b"\\Archive" in l for l in lines)
    assert not any(l.endswith(b" INBOX") for l in lines)
    assert status(c.cmd("SUBSCRIBE Work")).startswith(b"OK")
    assert status(c.cmd("SUBSCRIBE Gone")).startswith(b"OK")
    lines = c.cmd('LIST (SUBSCRIBED) "" "*"')
    work = [l for l in lines if l.endswith(b" Work")][0]
    assert b"\\Subscribed" in work
    gone = [l for l in lines if l.endswith(b" Gone")][0]
    assert b"\\NonExistent" in gone
    lines = c.cmd('LSUB "" "*"')
    assert any(l.startswith(b"* LSUB") and l.endswith(b" Work") for l in lines)
    assert status(c.cmd("UNSUBSCRIBE Work")).startswith(b"OK")
    assert not any(l.endswith(b" Work") for l in c.cmd('LSUB "" "*"'))
    deliver(imap, "alice@example.test", message(1))
    deliver(imap, "alice@example.test", message(2))
    lines = c.cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE HIGHESTMODSEQ "
                  "RECENT)")
    st = parse_sexp(lines[0], lines[0].index(b"("))[0]
    st = dict(zip(st[::2], st[1::2]))
    assert st[b"MESSAGES"] == 2 and st[b"UNSEEN"] == 2 and st[b"UIDNEXT"] == 3
    assert st[b"SIZE"] >= len(message(1)) + len(message(2))
    assert status(c.cmd("STATUS nosuch (MESSAGES)")).startswith(b"NO [NONEXISTENT]")
    lines = c.cmd('LIST "" "INBOX" RETURN (CHILDREN STATUS (MESSAGES UNSEEN))')
    assert lines[0].startswith(b"* LIST (\\HasNoChildren) ")
    assert lines[1] == b"* STATUS INBOX (MESSAGES 2 UNSEEN 2)"


def test_bodystructure_matches_an_independent_parse(imap):
    msgs, attachment = mime_messages()
    c = Raw(imap)
    for raw in msgs.values():
        append(c, "INBOX", raw)
    c.cmd("SELECT INBOX")
    lines = fetch_lines(c.cmd("FETCH 1:4 (BODYSTRUCTURE ENVELOPE RFC822.SIZE BODY[])"))
    assert len(lines) == 4
    for line, (name, raw) in zip(lines, msgs.items()):
        items = fetch_items(line)
        assert items["BODY[]"] == raw, name
        assert items["RFC822.SIZE"] == len(raw), name
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        print(name, items["BODYSTRUCTURE"])
        assert actual_structure(items["BODYSTRUCTURE"]) == expected_structure(parsed), name
        assert items["ENVELOPE"][1].decode() == parsed["Subject"]
    # multipart/alternative: the parts and their subtypes
    bs = fetch_item(lines[1], "BODYSTRUCTURE")
    assert bs[2] == b"ALTERNATIVE" or bs[2] == b"alternative"
    # BODY (non-extensible) of the plain message: type, subtype, params, ..., size, lines
    body = fetch_item(fetch_lines(c.cmd("FETCH 1 BODY"))[0], "BODY")
    assert body[0].upper() == b"TEXT" and body[6] == len(b"hello\r\nworld\r\n") and body[7] == 2


def test_fetch_sections_partials_binary(imap):
    msgs, attachment = mime_messages()
    c = Raw(imap)
    for raw in msgs.values():
        append(c, "INBOX", raw)
    c.cmd("SELECT INBOX")
    plain, alt, mixed, nested = msgs.values()
    hdr_end = plain.index(b"\r\n\r\n") + 4

    def one(seq, items):
        spec = items if items in ("ALL", "FAST", "FULL") else f"({items})"
        lines = fetch_lines(c.cmd(f"FETCH {seq} {spec}"))
        assert len(lines) == 1, c.cmd("NOOP")
        return fetch_items(lines[0])

    it = one(1, "BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[]<0.10> BODY.PEEK[1]")
    assert it["BODY[HEADER]"] == plain[:hdr_end]
    assert it["BODY[TEXT]"] == plain[hdr_end:]
    assert it["BODY[]<0>"] == plain[:10]
    assert it["BODY[1]"] == plain[hdr_end:]
    it = one(1, "BODY.PEEK[HEADER.FIELDS (SUBJECT from)] BODY.PEEK[HEADER.FIELDS.NOT (Subject)]")
    assert it["BODY[HEADER.FIELDS (SUBJECT FROM)]"] == \
        b"From: a@example.org\r\nSubject: plain\r\n\r\n"
    assert b"Subject" not in it["BODY[HEADER.FIELDS.NOT (SUBJECT)]"]
    assert b"To: alice@example.test\r\n" in it["BODY[HEADER.FIELDS.NOT (SUBJECT)]"]
    # nothing read so far: PEEK leaves \Seen alone
    assert b"\\Seen" not in one(1, "FLAGS")["FLAGS"]
    it = one(2, "BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[2] BINARY.PEEK[2] BINARY.SIZE[2]")
    assert it["BODY[1]"] == b"plain text"
    assert it["BODY[2.MIME]"].startswith(b"Content-Type: text/html")
    assert it["BODY[2.MIME]"].endswith(b"\r\n\r\n")
    assert it["BODY[2]"] == b"<p>caf=C3=A9</p>"
    assert it["BINARY[2]"] == "<p>café</p>".encode()
    assert it["BINARY.SIZE[2]"] == len("<p>café</p>".encode())
    it = one(3, "BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[2]<100.50>")
    assert it["BINARY[2]"] == attachment
    assert it["BINARY.SIZE[2]"] == len(attachment)
    assert it["BINARY[2]<100>"] == attachment[100:150]
    # the embedded message: its header, text and parts
    it = one(4, "BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2.2.MIME]")
    assert it["BODY[2.HEADER]"] == alt[:alt.index(b"\r\n\r\n") + 4]
    assert it["BODY[2.TEXT]"] == alt[alt.index(b"\r\n\r\n") + 4:]
    assert it["BODY[2.1]"] == b"plain text"
    assert it["BODY[2.2.MIME]"].startswith(b"Content-Type: text/html")
    assert one(1, "BODY.PEEK[7]")["BODY[7]"] is None
    # RFC822.* and BODY[] set \Seen and report the new flags
    it = one(1, "RFC822.HEADER")
    assert it["RFC822.HEADER"] == plain[:hdr_end] and "FLAGS" not in it
    it = one(1, "BODY[TEXT]")
    assert b"\\Seen" in it["FLAGS"]
    it = one(2, "RFC822")
    assert it["RFC822"] == alt and b"\\Seen" in it["FLAGS"]
    # macros and the other items
    assert one(1, "FAST")["RFC822.SIZE"] == len(plain)
    it = one(1, "ALL")
    assert set(it) >= {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}
    it = one(1, "FULL")
    assert "BODY" in it
    lines = fetch_lines(c.cmd("UID FETCH 1:* (FLAGS)"))
    assert len(lines) == 4 and all(b"UID " in l for l in lines)
    assert status(c.cmd("FETCH 9 FLAGS")).startswith(b"BAD")
    assert status(c.cmd("FETCH 1 (BODY[X])")).startswith(b"BAD")


def uids_of(c):
    return [fetch_item(l, "UID") for l in fetch_lines(c.cmd("UID FETCH 1:* (UID)"))]


def test_uids_increase_and_are_never_reused(imap):
    for n in range(1, 6):
        deliver(imap, "alice@example.test", message(n))
    c = Raw(imap)
    lines = c.cmd("SELECT INBOX")
    validity = [l for l in lines if b"UIDVALIDITY" in l][0]
    assert uids_of(c) == [1, 2, 3, 4, 5]
    c.cmd("STORE 4:5 +FLAGS.SILENT (\\Deleted)")
    lines = c.cmd("EXPUNGE")
    assert lines[:2] == [b"* 5 EXPUNGE", b"* 4 EXPUNGE"]
    c.cmd("LOGOUT")
    deliver(imap, "alice@example.test", message(6))
    c = Raw(imap)
    lines = c.cmd("SELECT INBOX")
    assert [l for l in lines if b"UIDVALIDITY" in l][0] == validity
    assert uids_of(c) == [1, 2, 3, 6]
    c.n += 1
    c.send("t%d APPEND INBOX {%d}" % (c.n, len(message(7))))
    assert c.line().startswith(b"+ ")
    c.send(message(7) + b"\r\n")
    lines = c.response("t%d" % c.n)
    assert status(lines).startswith(b"OK [APPENDUID ") and b" 7]" in lines[-1], lines
    assert b"* 5 EXISTS" in lines
    c.cmd("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    c.cmd("CLOSE")
    deliver(imap, "alice@example.test", message(8))
    c.cmd("SELECT INBOX")
    # expunged UIDs are never handed out again
    assert uids_of(c) == [8]


def test_two_sessions_see_each_others_changes(imap):
    for n in range(1, 4):
        deliver(imap, "alice@example.test", message(n))
    a, b = Raw(imap), Raw(imap)
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    a.cmd("STORE 2 +FLAGS (\\Flagged)")
    lines = b.cmd("NOOP")
    assert any(l.startswith(b"* 2 FETCH (FLAGS (\\Flagged") for l in lines), lines
    # an expunge is not told during FETCH, STORE or SEARCH, only after NOOP
    a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.cmd("EXPUNGE")
    untagged_expunge = re.compile(rb"^\* \d+ EXPUNGE$")
    lines = b.cmd("FETCH 1:* (FLAGS)")
    assert not any(untagged_expunge.match(l) for l in lines), lines
    # the data of what is still there, and either the expunged message's
    # (remembered) or NO [EXPUNGEISSUED] (RFC 2180 4.1.1, RFC 5530)
    assert len(fetch_lines(lines)) == 3 or (
        len(fetch_lines(lines)) == 2 and status(lines).startswith(b"NO [EXPUNGEISSUED]")), lines
    lines = b.cmd("SEARCH ALL")
    assert not any(untagged_expunge.match(l) for l in lines), lines
    lines = b.cmd("NOOP")
    assert b"* 1 EXPUNGE" in lines
    # an APPEND of one session is an EXISTS for the other
    a.cmd("APPEND INBOX (\\Seen) {%d+}\r\n%s" % (len(message(9)), message(9).decode()))
    lines = b.cmd("NOOP")
    assert b"* 3 EXISTS" in lines
    assert fetch_item(fetch_lines(b.cmd("FETCH 3 (FLAGS)"))[0], "FLAGS") == [b"\\Seen",
                                                                          b"\\Recent"]


def idle_until(c, predicate, timeout=10):
    c.sock.settimeout(timeout)
    while True:
        line = c.line()
        if predicate(line):
            return line


def test_idle_gets_a_delivery_at_once(imap):
    deliver(imap, "alice@example.test", message(1))
    c = Raw(imap)
    c.cmd("SELECT INBOX")
    c.n += 1
    tag = "t%d" % c.n
    c.send(f"{tag} IDLE")
    assert c.line().startswith(b"+ ")
    latencies, after = [], []
    for n in range(2, 7):
        start = time.monotonic()
        deliver(imap, "alice@example.test", message(n))
        accepted = time.monotonic()
        idle_until(c, lambda l: l == b"* %d EXISTS" % n)
        latencies.append(time.monotonic() - start)
        after.append(time.monotonic() - accepted)
    c.send("DONE")
    assert status(c.response(tag)).startswith(b"OK")
    print("IDLE latency, LMTP session start to EXISTS, ms: " +
          ", ".join("%.1f" % (l * 1000) for l in latencies) +
          "; LMTP's 250 to EXISTS, ms: " + ", ".join("%.1f" % (l * 1000) for l in after))
    assert max(latencies) < 2.0


def test_idle_gets_other_sessions_flags_and_expunges(imap):
    for n in range(1, 4):
        deliver(imap, "alice@example.test", message(n))
    a, b = Raw(imap), Raw(imap)
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    b.n += 1
    tag = "t%d" % b.n
    b.send(f"{tag} IDLE")
    assert b.line().startswith(b"+ ")
    start = time.monotonic()
    a.cmd("STORE 3 +FLAGS (\\Answered)")
    line = idle_until(b, lambda l: b"FETCH" in l)
    flag_latency = time.monotonic() - start
    assert line.startswith(b"* 3 FETCH (FLAGS (\\Answered")
    a.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    start = time.monotonic()
    a.cmd("EXPUNGE")
    idle_until(b, lambda l: l == b"* 2 EXPUNGE")
    print("IDLE latency, other session: flags %.1f ms, expunge %.1f ms" %
          (flag_latency * 1000, (time.monotonic() - start) * 1000))
    b.send("DONE")
    assert status(b.response(tag)).startswith(b"OK")
    assert len(uids_of(b)) == 2


def test_idlers_of_one_user_share_a_large_folder(imap, tmp_path):
    """Sessions of one user on one folder share its message list in the
    back end: each costs its own list of UIDs, not a copy of the folder's
    messages, and one change reaches every idler."""
    messages, sessions = 3000, 40
    imap.ctl("settings", "set", "imap4", "max-connections-per-user=unlimited", check=True)
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for n in range(messages):
        (md / "cur" / ("%d.M%dP1.host:2,%s" % (1000000 + n, n, "S" if n % 2 else ""))) \
            .write_bytes(message(n))
    imap.ctl("mailbox", "import", "alice", "INBOX", str(md), check=True)
    first = Raw(imap)
    assert b"* %d EXISTS" % messages in first.cmd("SELECT INBOX")
    pid = worker_pid(imap, "imap4-backend")
    base = rss_kib(pid)
    idlers = []
    for _ in range(sessions):
        c = Raw(imap)
        assert b"* %d EXISTS" % messages in c.cmd("SELECT INBOX")
        c.n += 1
        c.tag = "t%d" % c.n
        c.send(f"{c.tag} IDLE")
        assert c.line().startswith(b"+ ")
        idlers.append(c)
    grown = rss_kib(pid) - base
    print("imap4-backend RSS: %d KiB more for %d sessions on a %d-message folder "
          "(%.1f KiB each)" % (grown, sessions, messages, grown / sessions))

    def all_see(predicate, what):
        start = time.monotonic()
        for c in idlers:
            idle_until(c, predicate)
        print("%s reached all %d idlers in %.1f ms" %
              (what, sessions, (time.monotonic() - start) * 1000))

    deliver(imap, "alice@example.test", message(messages))
    all_see(lambda l: l == b"* %d EXISTS" % (messages + 1), "a delivery")
    first.cmd("STORE 7 +FLAGS (\\Flagged)")
    all_see(lambda l: l.startswith(b"* 7 FETCH (FLAGS (") and b"\\Flagged" in l, "a flag change")
    first.cmd("STORE 5 +FLAGS.SILENT (\\Deleted)")
    first.cmd("EXPUNGE")
    all_see(lambda l: l == b"* 5 EXPUNGE", "an expunge")
    for c in idlers:
        c.send("DONE")
        assert status(c.response(c.tag)).startswith(b"OK")
    assert len(uids_of(idlers[-1])) == messages
    # a copy of the folder's list per session would be about 100 bytes a
    # message (290 KiB here); freed memory stays in the sanitizer's
    # quarantine, so RSS says nothing there
    if b"libasan" not in open(f"/proc/{pid}/maps", "rb").read():
        assert grown / sessions < 96, grown


def test_idle_of_more_users_than_inotify_instances(imap):
    """A back-end worker watches every user's Maildir through one inotify
    instance, so more users with an IDLE session than one uid may have
    instances (fs.inotify.max_user_instances, 128 by default) each still
    get their delivery."""
    users = ["idle%d" % i for i in range(150)]
    start = time.monotonic()
    for u in users:
        imap.ctl("user", "add", u, "--password-hash", HASHES[PASSWORD], check=True)
    added = time.monotonic() - start
    # every session's next step is sent before any answer is read: the
    # logins and SELECTs of all users overlap
    start = time.monotonic()
    clients = {u: Raw(imap, user=None) for u in users}
    for step in ("LOGIN %s " + PASSWORD, "SELECT INBOX"):
        for u, c in clients.items():
            c.sock.settimeout(30)
            c.n += 1
            c.send("t%d %s" % (c.n, step.replace("%s", u)))
        for c in clients.values():
            assert status(c.response("t%d" % c.n)).startswith(b"OK")
    for c in clients.values():
        c.send("i IDLE")
    for c in clients.values():
        assert c.line().startswith(b"+ ")
    setup = time.monotonic() - start
    start = time.monotonic()
    # one transaction per recipient: smtplib reads one reply after DATA
    with smtplib.LMTP(str(imap.datadir / "lmtp.sock"), timeout=30) as lmtp:
        for u in users:
            assert lmtp.sendmail("sender@example.org", [u + "@example.test"], message(1)) == {}
    deadline = time.monotonic() + 10
    missed = []
    for u, c in clients.items():
        try:
            idle_until(c, lambda l: l == b"* 1 EXISTS", max(0.1, deadline - time.monotonic()))
        except (TimeoutError, socket.timeout):
            missed.append(u)
    print("%d users added in %.1f s, their IDLE sessions set up in %.1f s; all told within "
          "%.1f s of the first delivery" % (len(users), added, setup, time.monotonic() - start))
    assert missed == [], "%d of %d sessions got no EXISTS: %s" % (len(missed), len(users),
                                                                   " ".join(missed))
    for c in list(clients.values())[:3]:
        c.send("DONE")
        assert status(c.response("i")).startswith(b"OK")
    for c in clients.values():
        c.sock.close()


def test_store_with_condstore(imap):
    for n in range(1, 4):
        deliver(imap, "alice@example.test", message(n))
    c = Raw(imap)
    lines = c.cmd("SELECT INBOX (CONDSTORE)")
    assert any(l.startswith(b"* OK [HIGHESTMODSEQ ") for l in lines)
    lines = c.cmd("STORE 1 +FLAGS (\\Seen $Important)")
    it = fetch_items(fetch_lines(lines)[0])
    assert b"\\Seen" in it["FLAGS"] and b"$Important" in it["FLAGS"]
    modseq = it["MODSEQ"][0]
    lines = c.cmd("STORE 1 -FLAGS ($Important)")
    assert b"$Important" not in fetch_item(fetch_lines(lines)[0], "FLAGS")
    lines = c.cmd("STORE 1 FLAGS.SILENT (\\Flagged)")
    assert fetch_lines(lines)[0].startswith(b"* 1 FETCH (MODSEQ (")  # CONDSTORE: silent but MODSEQ
    lines = c.cmd("FETCH 1 (FLAGS)")
    assert fetch_item(fetch_lines(lines)[0], "FLAGS") == [b"\\Flagged"]
    lines = c.cmd("STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % modseq)
    assert status(lines).startswith(b"OK [MODIFIED 1]"), lines
    lines = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % modseq)
    assert sorted(fetch_item(l, "UID") for l in fetch_lines(lines)) == [1, 2]
    assert all("MODSEQ" in fetch_items(l) for l in fetch_lines(lines))
    assert status(c.cmd("STORE 1 +FLAGS (\\Bogus)")).startswith(b"BAD")
    c.cmd("EXAMINE INBOX")
    assert status(c.cmd("STORE 1 +FLAGS (\\Seen)")).startswith(b"NO")
    # EXAMINE never sets \Seen
    it = fetch_items(fetch_lines(c.cmd("FETCH 3 (BODY[] FLAGS)"))[0])
    assert b"\\Seen" not in it["FLAGS"]


def test_copy_move_append(imap):
    for n in range(1, 5):
        deliver(imap, "alice@example.test", message(n))
    c = Raw(imap)
    c.cmd("SELECT INBOX")
    c.cmd("CREATE Keep")
    lines = c.cmd("COPY 1:2 Keep")
    assert status(lines).startswith(b"OK [COPYUID "), lines
    validity, src, dst = status(lines).split(b"]")[0].split()[2:5]
    assert src == b"1:2" and dst == b"1:2"
    assert status(c.cmd("COPY 1 Nosuch")).startswith(b"NO [TRYCREATE]")
    lines = c.cmd("UID MOVE 3 Keep")
    assert lines[0].startswith(b"* OK [COPYUID %s 3 3]" % validity)
    assert b"* 3 EXPUNGE" in lines and status(lines).startswith(b"OK")
    lines = c.cmd("MOVE 1 Keep")
    assert b"* 1 EXPUNGE" in lines
    lines = c.cmd("STATUS Keep (MESSAGES)")
    assert lines[0] == b"* STATUS Keep (MESSAGES 4)"
    # APPEND: flags, date, APPENDUID, TRYCREATE, literal8
    body = message(10)
    lines = c.cmd('APPEND Keep (\\Flagged $Work) "14-Jul-2020 02:44:25 +0200" {%d+}\r\n%s'
                  % (len(body), body.decode()))
    assert status(lines).startswith(b"OK [APPENDUID "), lines
    uid = int(status(lines).split()[3].rstrip(b"]"))
    assert uid == 5
    lines = c.cmd("APPEND Nosuch {3+}\r\nabc")
    assert status(lines).startswith(b"NO [TRYCREATE]")
    c.cmd("SELECT Keep")
    it = fetch_items(fetch_lines(c.cmd("UID FETCH 5 (FLAGS INTERNALDATE BODY.PEEK[])"))[0])
    assert it["BODY[]"] == body
    assert set(it["FLAGS"]) >= {b"\\Flagged", b"$Work"}
    assert it["INTERNALDATE"] == b"14-Jul-2020 00:44:25 +0000"
    # MULTIAPPEND
    lines = c.cmd("APPEND Keep {3+}\r\nabc {3+}\r\ndef")
    assert status(lines).startswith(b"OK [APPENDUID ") and b" 6:7]" in status(lines)
    # BINARY: a literal8 with NUL bytes in a part, read back decoded and raw
    raw = (b"Subject: bin\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary"
           b"\r\n\r\nA\0B\0C\r\n--b--\r\n")
    lines = c.cmd(b"APPEND Keep ~{%d+}\r\n" % len(raw) + raw)
    assert status(lines).startswith(b"OK [APPENDUID "), lines
    it = fetch_items(fetch_lines(c.cmd("UID FETCH 8 (BINARY.PEEK[1] BINARY.SIZE[1] "
                                       "BODY.PEEK[])"))[0])
    assert it["BINARY[1]"] == b"A\0B\0C" and it["BINARY.SIZE[1]"] == 5
    assert it["BODY[]"] == raw
    # WITHIN: everything here arrived just now, but the dated APPEND
    assert c.cmd("UID SEARCH YOUNGER 3600")[0] == b"* SEARCH 1 2 3 4 6 7 8"
    assert c.cmd("UID SEARCH OLDER 3600")[0] == b"* SEARCH 5"


def test_search_esearch_searchres(imap):
    for n in range(1, 6):
        deliver(imap, "alice@example.test", message(n, b"findme %d\r\n" % (n % 2)))
    c = Raw(imap)
    c.cmd("SELECT INBOX")
    c.cmd("STORE 2,4 +FLAGS (\\Seen)")
    assert c.cmd("SEARCH ALL")[0] == b"* SEARCH 1 2 3 4 5"
    assert c.cmd("SEARCH UNSEEN")[0] == b"* SEARCH 1 3 5"
    assert c.cmd("SEARCH SUBJECT \"message 3\"")[0] == b"* SEARCH 3"
    assert c.cmd("SEARCH FROM sender@example.org NOT SEEN")[0] == b"* SEARCH 1 3 5"
    assert c.cmd("SEARCH OR 1 5")[0] == b"* SEARCH 1 5"
    assert c.cmd("SEARCH BODY \"findme 1\"")[0] == b"* SEARCH 1 3 5"
    assert c.cmd("SEARCH 2:4 LARGER 10")[0] == b"* SEARCH 2 3 4"
    assert c.cmd("UID SEARCH UID 3:*")[0] == b"* SEARCH 3 4 5"
    assert c.cmd("SEARCH SENTON 7-Feb-1994")[0] == b"* SEARCH 1 2 3 4 5"
    assert c.cmd("SEARCH HEADER Message-ID m4")[0] == b"* SEARCH 4"
    assert c.cmd("SEARCH RECENT")[0] == b"* SEARCH"
    lines = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert lines[0] == b'* ESEARCH (TAG "t%d") MIN 1 MAX 5 COUNT 3 ALL 1,3,5' % c.n
    lines = c.cmd("UID SEARCH RETURN (COUNT) SEEN")
    assert lines[0] == b'* ESEARCH (TAG "t%d") UID COUNT 2' % c.n
    lines = c.cmd("SEARCH RETURN (SAVE) SEEN")
    assert not any(l.startswith(b"* ") for l in lines)
    lines = c.cmd("FETCH $ (UID)")
    assert [fetch_item(l, "UID") for l in fetch_lines(lines)] == [2, 4]
    assert c.cmd("SEARCH $ SUBJECT \"message 4\"")[0] == b"* SEARCH 4"
    assert status(c.cmd("SEARCH CHARSET KOI8-R ALL")).startswith(b"NO [BADCHARSET")
    lines = c.cmd("SEARCH MODSEQ 1")
    assert lines[0].startswith(b"* SEARCH 1 2 3 4 5 (MODSEQ ")


def worker_pid(inst, service):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            args = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"--worker" in args and service.encode() in args and \
                str(inst.datadir).encode() in args:
            return int(d)
    raise AssertionError(f"no {service} worker")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_large_fetch_streams_with_bounded_memory(imap):
    c = Raw(imap)
    big = []
    for n in range(4):
        body = (b"line %d of a large message " % n + b"x" * 60 + b"\r\n") * 120000
        raw = b"From: a@example.org\r\nSubject: big %d\r\n\r\n" % n + body
        big.append(raw)
        append(c, "INBOX", raw)
    c.cmd("SELECT INBOX")
    pid = worker_pid(imap, "imap4-backend")
    base = rss_kib(pid)
    total = sum(len(b) for b in big)
    assert total > 40 * 1024 * 1024
    c.n += 1
    c.send("t%d UID FETCH 1:* (BODY.PEEK[])" % c.n)
    # a slow reader: the back end must wait, not buffer
    peak = base
    received = 0
    chunks = []
    c.sock.settimeout(30)
    start = time.monotonic()
    while received < total:
        chunk = c.sock.recv(256 * 1024)
        assert chunk
        chunks.append(chunk)
        received += len(chunk)
        if len(chunks) % 16 == 0:
            peak = max(peak, rss_kib(pid))
            time.sleep(0.005)
    elapsed = time.monotonic() - start
    c.buf += b"".join(chunks)
    lines = c.response("t%d" % c.n)
    assert status(lines).startswith(b"OK")
    got = [fetch_item(l, "BODY[]") for l in fetch_lines(lines)]
    assert got == big
    print("imap4-backend RSS: %d KiB before, peak %d KiB while sending %d MiB in %.1f s" %
          (base, peak, total >> 20, elapsed))
    # freed memory stays in the sanitizer's quarantine: RSS says nothing there
    if b"libasan" not in open(f"/proc/{pid}/maps", "rb").read():
        assert peak - base < 16 * 1024


def test_fetch_of_many_messages_in_slices(imap):
    c = Raw(imap)
    for n in range(0, 600, 100):
        msgs = b" ".join(b"{%d+}\r\n%s" % (len(message(k)), message(k))
                         for k in range(n, n + 100))
        lines = c.cmd(b"APPEND INBOX " + msgs)
        assert status(lines).startswith(b"OK [APPENDUID"), lines
    c.cmd("SELECT INBOX")
    lines = c.cmd("UID FETCH 1:* (UID RFC822.SIZE BODY[])")
    fl = fetch_lines(lines)
    assert len(fl) == 600
    for k, l in enumerate(fl):
        it = fetch_items(l)
        assert it["UID"] == k + 1 and it["BODY[]"] == message(k)
        assert it["RFC822.SIZE"] == len(it["BODY[]"])
        assert b"\\Seen" in it["FLAGS"]
    # pipelined commands wait for the FETCH to end, in order
    c.send(b"p1 FETCH 1:* (FLAGS)\r\np2 NOOP\r\np3 SEARCH UNSEEN\r\n")
    assert len(fetch_lines(c.response("p1"))) == 600
    assert status(c.response("p2")).startswith(b"OK")
    assert c.response("p3")[0] == b"* SEARCH"


@pytest.fixture
def imap_pop(imap):
    imap.ctl("service", "start", "pop3-backend", "pop3", check=True)
    return imap


def test_append_is_seen_by_pop3_and_pop3_dele_by_imap(imap_pop):
    import poplib
    c = Raw(imap_pop)
    append(c, "INBOX", message(1))
    append(c, "INBOX", message(2))
    c.cmd("SELECT INBOX")
    p = poplib.POP3_SSL("127.0.0.1", imap_pop.port("pop3", tls=True), context=tls_context(),
                        timeout=30)
    p.user("alice")
    p.pass_(PASSWORD)
    assert p.stat()[0] == 2
    assert b"\r\n".join(p.retr(2)[1]) + b"\r\n" == message(2)
    p.dele(1)
    p.quit()
    # the expunge comes through the store's change notification
    deadline = time.monotonic() + 5
    while True:
        lines = c.cmd("NOOP")
        if b"* 1 EXPUNGE" in lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert b"* 1 EXPUNGE" in lines
    # RETR made message 2 \Seen at QUIT
    assert b"\\Seen" in fetch_item(fetch_lines(c.cmd("FETCH 1 (FLAGS)"))[0], "FLAGS")


def test_curl_imaps_list_and_fetch(imap):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    deliver(imap, "alice@example.test", message(5))
    url = f"imaps://127.0.0.1:{imap.port('imap4', tls=True)}"
    r = subprocess.run(["curl", "-sk", "--max-time", "20", url + "/", "-u",
                        f"alice:{PASSWORD}"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"INBOX" in r.stdout and b"Sent" in r.stdout
    r = subprocess.run(["curl", "-sk", "--max-time", "20", url + "/INBOX;UID=1", "-u",
                        f"alice:{PASSWORD}"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"body of message 5" in r.stdout and b"Subject: message 5" in r.stdout
    r = subprocess.run(["curl", "-sk", "--max-time", "20", url + "/INBOX?SUBJECT%20message",
                        "-u", f"alice:{PASSWORD}"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"SEARCH 1" in r.stdout, r


def test_mbsync_two_way_sync_of_200_messages(imap, tmp_path):
    if shutil.which("mbsync") is None:
        pytest.skip("mbsync is not installed")
    c = Raw(imap)
    for n in range(0, 200, 50):
        msgs = b" ".join(b"{%d+}\r\n%s" % (len(message(k)), message(k))
                         for k in range(n, n + 50))
        assert status(c.cmd(b"APPEND INBOX " + msgs)).startswith(b"OK")
    local = tmp_path / "maildir"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount test
Host 127.0.0.1
Port {imap.port('imap4', tls=True)}
User alice
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {imap.datadir / 'tls' / 'server.crt'}

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
""")

    def run():
        r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr

    run()

    def norm(data):
        # mbsync keeps local copies with LF and its own X-TUID header
        data = data.replace(b"\r\n", b"\n")
        return b"".join(l for l in data.splitlines(True) if not l.startswith(b"X-TUID: "))

    def local_files():
        return sorted((local / "INBOX" / "cur").iterdir()) + \
            sorted((local / "INBOX" / "new").iterdir())

    files = local_files()
    assert len(files) == 200
    assert {norm(f.read_bytes()) for f in files} == {norm(message(k)) for k in range(200)}
    # the other way: 200 new local messages, some local deletions and a flag
    for k in range(200, 400):
        (local / "INBOX" / "new" / f"{1700000000 + k}.local{k}.host").write_bytes(
            message(k).replace(b"\r\n", b"\n"))
    removed = {norm(f.read_bytes()) for f in files[:10]}
    for f in files[:10]:
        f.unlink()
    flagged = files[10]
    flagged_body = norm(flagged.read_bytes())
    base = str(flagged).split(":2,")[0]
    flagged.rename(base + ":2,FS")
    run()
    c.cmd("SELECT INBOX")
    lines = fetch_lines(c.cmd("FETCH 1:* (FLAGS BODY.PEEK[])"))
    bodies = {norm(fetch_item(l, "BODY[]")): fetch_item(l, "FLAGS") for l in lines}
    assert len(lines) == 390
    assert set(bodies) == {norm(message(k)) for k in range(400)} - removed
    assert [b for b, f in bodies.items() if b"\\Flagged" in f] == [flagged_body]
    # and back: a server-side change reaches the local copy
    c.cmd("STORE 1 +FLAGS (\\Deleted)")
    c.cmd("EXPUNGE")
    run()
    assert len(local_files()) == 389


def test_backend_refuses_forged_tickets_and_admin_login_when_off(imap):
    port = imap.port("imap4-backend")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"* OK [CAPABILITY IMAP4rev1")
        f.write(b"a XLOGIN alice 127.0.0.1:1 9999999999 " + b"0" * 64 + b"\r\n")
        f.flush()
        assert f.readline().startswith(b"a NO [AUTHENTICATIONFAILED]")
        f.write(b'b LOGIN "alice*boss" pw\r\nc SELECT INBOX\r\n')
        f.flush()
        assert f.readline().startswith(b"b NO")
        assert f.readline().startswith(b"c BAD")


def test_direct_admin_login_at_the_back_end(imap):
    deliver(imap, "alice@example.test", message(1))
    imap.ctl("user", "add", "boss", "--kind", "admin", input="Admin-pw-1\n", check=True)
    imap.ctl("settings", "set", "imap4-backend", "direct-admin-login=true", check=True)
    port = imap.port("imap4-backend")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"* OK")
        f.write(b'a LOGIN "alice*boss" Admin-pw-1\r\nb SELECT INBOX\r\n')
        f.flush()
        assert f.readline().startswith(b"a OK [CAPABILITY IMAP4rev1")
        lines = []
        while not (line := f.readline()).startswith(b"b "):
            lines.append(line)
        assert b"* 1 EXISTS\r\n" in lines and line.startswith(b"b OK [READ-WRITE]")
    assert "administrator boss logged in directly as alice" in imap.read_log()


def test_kick_ends_the_session(imap):
    c = Raw(imap)
    c.cmd("SELECT INBOX")
    imap.ctl("user", "set", "alice", "imap4=off", "--kick", check=True)
    c.sock.settimeout(5)
    rest = b""
    try:
        while chunk := c.sock.recv(4096):
            rest += chunk
    except (ConnectionResetError, ssl.SSLError, TimeoutError):
        pass
    with pytest.raises(imaplib.IMAP4.error):
        login(imap)


def test_imaplib_session(imap):
    deliver(imap, "alice@example.test", message(1))
    c = login(imap)
    ok(c.select("INBOX"))
    typ, data = c.uid("SEARCH", None, "ALL")
    assert data == [b"1"]
    typ, data = c.uid("FETCH", "1", "(RFC822)")
    assert b"body of message 1" in data[0][1]
    ok(c.create("Archive/2024"))
    ok(c.uid("COPY", "1", "Archive/2024"))
    ok(c.store("1", "+FLAGS", "\\Deleted"))
    ok(c.expunge())
    ok(c.close())
    typ, data = c.status("Archive/2024", "(MESSAGES)")
    assert data[0] == b'"Archive/2024" (MESSAGES 1)' or data[0] == b"Archive/2024 (MESSAGES 1)"
    c.logout()


def test_uid_expunge_only_the_given_uids(imap):
    for n in range(1, 5):
        deliver(imap, "alice@example.test", message(n))
    c = Raw(imap)
    c.cmd("SELECT INBOX")
    c.cmd("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
    lines = c.cmd("UID EXPUNGE 2:3")
    assert lines[:2] == [b"* 3 EXPUNGE", b"* 2 EXPUNGE"] and status(lines).startswith(b"OK")
    assert uids_of(c) == [1, 4]


def test_utf8_accept_quota_and_recursivematch(imap):
    imap.ctl("user", "add", "bob", "--quota", "1M", input=PASSWORD + "\n", check=True)
    c = Raw(imap)
    assert c.cmd("ENABLE UTF8=ACCEPT")[0] == b"* ENABLED UTF8=ACCEPT"
    assert status(c.cmd('CREATE "Entwürfe/Größe"'.encode())).startswith(b"OK")
    lines = c.cmd('LIST "" "Entw*"')
    assert '* LIST (\\HasChildren) "/" "Entwürfe"'.encode() in lines
    assert status(c.cmd('SELECT "Entwürfe/Größe"'.encode())).startswith(b"OK")
    c.cmd("LOGOUT")
    c = Raw(imap)
    lines = c.cmd('LIST "" "Entw*"')
    assert b'* LIST (\\HasChildren) "/" Entw&APw-rfe' in lines
    # QUOTA: unlimited, then a limit set by the administrator
    assert c.cmd("GETQUOTAROOT INBOX")[:2] == [b'* QUOTAROOT INBOX ""', b'* QUOTA "" ()']
    assert status(c.cmd('SETQUOTA "" (STORAGE 10)')).startswith(b"NO")
    c.cmd("LOGOUT")
    deliver(imap, "bob@example.test", message(1))
    c = Raw(imap, "bob", PASSWORD)
    line = c.cmd('GETQUOTA ""')[0]
    assert re.fullmatch(rb'\* QUOTA "" \(STORAGE 1 1024\)', line), line
    big = b"Subject: big\r\n\r\n" + b"x" * (1100 * 1024) + b"\r\n"
    lines = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(big) + big)
    assert status(lines).startswith(b"NO [OVERQUOTA]")
    # RECURSIVEMATCH: a parent of a subscribed folder, with CHILDINFO
    c.cmd("CREATE Lists/postern")
    c.cmd("SUBSCRIBE Lists/postern")
    lines = c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'* LIST (\\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))' in lines, lines


def threaded(n, subject, date_day, frm="x@example.org", extra=b""):
    return (b"From: %s\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            b"Message-ID: <%d@example.org>\r\nDate: %d Mar 2024 10:00:00 +0000\r\n%s\r\n"
            b"text %d\r\n" % (frm.encode(), subject.encode(), n, date_day, extra, n))


def test_sort_and_thread(imap):
    c = Raw(imap)
    msgs = [
        threaded(1, "topic", 1, "carol@example.org"),
        threaded(2, "Re: topic", 3, "bob@example.org", b"In-Reply-To: <1@example.org>\r\n"),
        threaded(3, "RE: [list] topic", 4, "alice@example.org",
                 b"References: <1@example.org> <2@example.org>\r\n"),
        threaded(4, "another", 2, "dave@example.org", b"x" * 0),
        threaded(5, "Fwd: topic (fwd)", 5, "eve@example.org",
                 b"References: <1@example.org>\r\n"),
        threaded(6, "topic", 6, "frank@example.org"),
    ]
    for m in msgs:
        append(c, "INBOX", m)
    c.cmd("SELECT INBOX")
    assert c.cmd("SORT (DATE) UTF-8 ALL")[0] == b"* SORT 1 4 2 3 5 6"
    assert c.cmd("SORT (REVERSE DATE) UTF-8 ALL")[0] == b"* SORT 6 5 3 2 4 1"
    assert c.cmd("SORT (SUBJECT DATE) UTF-8 ALL")[0] == b"* SORT 4 1 2 3 5 6"
    assert c.cmd("SORT (FROM) UTF-8 ALL")[0] == b"* SORT 3 2 1 4 5 6"
    assert c.cmd("SORT (REVERSE DISPLAYFROM) UTF-8 ALL")[0] == b"* SORT 6 5 4 1 2 3"
    assert c.cmd("SORT (ARRIVAL) US-ASCII NOT FROM carol")[0] == b"* SORT 2 3 4 5 6"
    assert c.cmd("UID SORT (SIZE) UTF-8 1:3")[0] == b"* SORT 1 2 3"
    assert status(c.cmd("SORT (DATE) KOI8-R ALL")).startswith(b"NO [BADCHARSET")
    lines = c.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert lines[0] == b"* THREAD (1 (2)(3)(5)(6))(4)", lines
    lines = c.cmd("THREAD REFERENCES UTF-8 ALL")
    assert lines[0] == b"* THREAD ((1 (2 3)(5))(6))(4)", lines
    lines = c.cmd("UID THREAD REFERENCES UTF-8 2:3")
    assert lines[0] == b"* THREAD (2 3)", lines


def test_qresync(imap):
    for n in range(1, 5):
        deliver(imap, "alice@example.test", message(n))
    a, b = Raw(imap), Raw(imap)
    assert a.cmd("ENABLE QRESYNC")[0] == b"* ENABLED CONDSTORE QRESYNC"
    lines = a.cmd("SELECT INBOX")
    validity = int([l for l in lines if b"UIDVALIDITY" in l][0].split()[3].rstrip(b"]"))
    highest = int([l for l in lines if b"HIGHESTMODSEQ" in l][0].split()[3].rstrip(b"]"))
    b.cmd("SELECT INBOX")
    b.cmd("STORE 2 +FLAGS (\\Flagged)")
    b.cmd("STORE 3 +FLAGS (\\Deleted)")
    b.cmd("EXPUNGE")
    # the selected session hears VANISHED, not EXPUNGE
    lines = a.cmd("NOOP")
    assert b"* VANISHED 3" in lines and not any(b"EXPUNGE" in l for l in lines), lines
    assert any(l.startswith(b"* 2 FETCH (FLAGS (\\Flagged)") and b"MODSEQ" in l
               for l in lines), lines
    lines = a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % highest)
    assert lines[0] == b"* VANISHED (EARLIER) 3", lines
    assert [fetch_item(l, "UID") for l in fetch_lines(lines)] == [2]
    # a resynchronising SELECT: what changed since the client's MODSEQ
    c = Raw(imap)
    c.cmd("ENABLE QRESYNC")
    lines = c.cmd("SELECT INBOX (QRESYNC (%d %d))" % (validity, highest))
    assert b"* VANISHED (EARLIER) 3" in lines, lines
    changed = fetch_lines(lines)
    assert len(changed) == 1 and fetch_item(changed[0], "UID") == 2
    lines = c.cmd("SELECT INBOX (QRESYNC (%d %d 1:2))" % (validity, highest))
    assert not any(b"VANISHED" in l for l in lines)
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"
    assert status(b.cmd("SELECT INBOX (QRESYNC (1 1))")).startswith(b"BAD")


def test_bounds_and_malformed_input(imap):
    c = Raw(imap)
    # a synchronising literal over APPENDLIMIT is refused before its bytes
    c.send("x1 APPEND INBOX {999999999}")
    line = c.line()
    assert line.startswith(b"x1 BAD") or line.startswith(b"x1 NO"), line
    assert b"TOOBIG" in line
    c.send('x2 SEARCH ' + "(" * 40 + "ALL" + ")" * 40)
    assert c.line().startswith(b"x2 BAD")
    c.send("x3 FETCH 1:2:3 FLAGS")
    assert c.line().startswith(b"x3 BAD")
    c.send('x4 LIST "" {1}')
    assert c.line().startswith(b"+ ")
    c.send(b"*\r\n")
    lines = c.response("x4")
    assert status(lines).startswith(b"OK") and any(b"INBOX" in l for l in lines)
    c.send("x5 IDLE")
    assert c.line().startswith(b"+ ")
    c.send("NOT-DONE")
    assert c.line().startswith(b"x5 BAD")
    assert status(c.cmd("NOOP")).startswith(b"OK")
