"""posternctl against a data dir, without a running master: init, users and
settings. Every refused command must exit 1 with a message that says what is
wrong, and must leave the data dir exactly as it was."""

import hashlib
import os
import re
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("POSTERN_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
POSTERNCTL = BUILD / "src" / "admin" / "posternctl"

OFFSET = 10000


def ctl(datadir, *args, input=None):
    env = dict(os.environ)
    env.pop("POSTERN_DIR", None)
    return subprocess.run([str(POSTERNCTL), "-d", str(datadir), *args], input=input,
                          capture_output=True, text=True, timeout=60, env=env)


def ok(datadir, *args, input=None):
    r = ctl(datadir, *args, input=input)
    assert r.returncode == 0, f"posternctl {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def refused(datadir, *args, input=None, says=()):
    r = ctl(datadir, *args, input=input)
    assert r.returncode == 1, f"posternctl {' '.join(args)} exited {r.returncode}: " \
                              f"{r.stdout}{r.stderr}"
    assert r.stderr.startswith("posternctl: "), r.stderr
    for text in ([says] if isinstance(says, str) else says):
        assert text in r.stderr, f"{text!r} not in {r.stderr!r}"
    return r


def snapshot(path):
    """name -> sha256 of every file below path (the -wal/-shm files that
    SQLite keeps for readers are left out: they are not content)."""
    result = {}
    for p in sorted(Path(path).rglob("*")):
        if p.is_file() and not p.name.endswith(("-wal", "-shm")):
            result[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return result


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    ok(d, "init", "--domain", "example.test", "--hostname", "mail.example.test",
       "--bind", "127.0.0.1", "--port-offset", str(OFFSET))
    return d


def settings_of(datadir, service):
    r = ok(datadir, "settings", "get", service)
    values = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition(" = ")
        values[key.strip()] = value
    return values


# init


def test_init_creates_the_instance(tmp_path):
    d = tmp_path / "data"
    r = ok(d, "init", "--domain", "Example.Test", "--hostname", "mail.example.test",
           "--bind", "127.0.0.1", "--port-offset", str(OFFSET), "--demo-user", "demo")
    for name in ("directory.db", "settings.db", "tls/server.crt", "tls/server.key"):
        assert (d / name).is_file(), name
    for name in ("mail", "logs"):
        assert (d / name).is_dir(), name
    assert stat.S_IMODE((d / "directory.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "tls/server.key").stat().st_mode) == 0o600
    assert (d / "tls/server.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    # nothing left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]

    assert "example.test" in r.stdout
    assert str(d / "tls" / "server.crt") in r.stdout
    m = re.search(r"^demo user: demo  password: (\S+)$", r.stdout, re.M)
    assert m and len(m.group(1)) == 16
    listing = ok(d, "user", "list").stdout
    assert re.search(r"^demo\s+user\s+on\s+on\s+on\s+local\s+unlimited\s+default$", listing, re.M)

    imap = settings_of(d, "imap4")
    assert imap["ssl-bindings"] == "127.0.0.1:10993"
    assert imap["unencrypted-or-tls-bindings"] == "127.0.0.1:10143"
    assert imap["internal-connection-settings"] == \
        "mail.example.test:10993:SSL, mail.example.test:10143:TLS"
    assert imap["startup"] == "manual"
    assert settings_of(d, "pop3")["ssl-bindings"] == "127.0.0.1:10995"
    assert settings_of(d, "pop3-backend")["unencrypted-or-tls-bindings"] == "127.0.0.1:11110"
    assert settings_of(d, "submission")["internal-connection-settings"] == \
        "mail.example.test:10465:SSL, mail.example.test:10587:TLS"
    assert settings_of(d, "http")["startup"] == "automatic"
    assert settings_of(d, "lmtp")["unix-socket"] == "lmtp.sock"

    db = sqlite3.connect(d / "directory.db")
    meta = dict(db.execute("SELECT key, value FROM meta"))
    backends = db.execute("SELECT name, imap4_address, pop3_address, lmtp_address "
                          "FROM backends").fetchall()
    db.close()
    assert meta["domain"] == "example.test"
    assert meta["hostname"] == "mail.example.test"
    assert re.fullmatch(r"[0-9a-f]{64}", meta["internal_secret"])
    assert backends == [("local", "127.0.0.1:11143", "127.0.0.1:11110",
                         f"unix:{d.resolve()}/lmtp.sock")]


def test_init_defaults_without_bind_or_offset(tmp_path):
    d = tmp_path / "data"
    ok(d, "init", "--domain", "example.test", "--hostname", "mx.example.test")
    imap = settings_of(d, "imap4")
    assert imap["ssl-bindings"] == "[::]:993, 0.0.0.0:993"
    assert imap["unencrypted-or-tls-bindings"] == "[::]:143, 0.0.0.0:143"
    assert settings_of(d, "pop3")["ssl-bindings"] == "[::]:995, 0.0.0.0:995"
    assert settings_of(d, "pop3")["internal-connection-settings"] == \
        "mx.example.test:995:SSL, mx.example.test:110:TLS"


def test_init_bind_ipv6(tmp_path):
    d = tmp_path / "data"
    ok(d, "init", "--domain", "example.test", "--hostname", "mx", "--bind", "::1")
    assert settings_of(d, "imap4")["ssl-bindings"] == "[::1]:993"


def test_second_init_is_refused(data):
    before = snapshot(data)
    refused(data, "init", "--domain", "other.test",
            says=f"{data} already holds a postern instance; refusing to overwrite")
    assert snapshot(data) == before
    # also when only one of the databases is there
    (data / "directory.db").unlink()
    refused(data, "init", "--domain", "other.test", says="refusing to overwrite")


@pytest.mark.parametrize("args,says", [
    (["--port-offset", "60000"], "beyond 65535"),
    (["--port-offset", "x"], None),
    (["--hostname", "bad host"], "host name 'bad host' is not a valid DNS name"),
    (["--bind", "example.com"], "--bind 'example.com' is not an IP address"),
    (["--demo-user", "a/b"], "'/' is not allowed"),
])
def test_failed_init_leaves_nothing(tmp_path, args, says):
    d = tmp_path / "data"
    r = ctl(d, "init", "--domain", "example.test", "--hostname", "mx", *args)
    assert r.returncode in (1, 2), r.stderr
    if says:
        assert says in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_needs_domain(tmp_path):
    r = ctl(tmp_path / "data", "init")
    assert r.returncode == 2
    assert "--domain is required" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_in_empty_dir_and_not_in_a_full_one(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    # a failure inside an existing empty dir leaves it empty
    refused(d, "init", "--domain", "example.test", "--hostname", "mx", "--port-offset", "64000",
            says="beyond 65535")
    assert list(d.iterdir()) == []
    ok(d, "init", "--domain", "example.test", "--hostname", "mx")
    assert (d / "directory.db").is_file()

    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("x")
    refused(full, "init", "--domain", "example.test", "--hostname", "mx", says="is not empty")
    assert [p.name for p in full.iterdir()] == ["something"]


# missing or damaged data dirs


@pytest.mark.parametrize("args", [
    ["user", "list"], ["user", "show", "alice"], ["user", "del", "alice"],
    ["user", "add", "alice"], ["settings", "get", "pop3"],
    ["settings", "set", "pop3", "workers=2"], ["settings", "reset", "pop3", "workers"],
])
def test_missing_data_dir_is_a_clear_error(tmp_path, args):
    d = tmp_path / "nowhere"
    refused(d, *args, input="pw\n", says=[f"data dir '{d}' does not exist", "init"])
    assert not d.exists()


def test_data_dir_without_databases(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    refused(d, "user", "list", says=[f"{d}/directory.db does not exist"])
    refused(d, "settings", "get", "pop3", says=[f"{d}/settings.db does not exist"])
    assert list(d.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["user", "list"], ["user", "show", "alice"], ["user", "add", "bob"],
    ["user", "del", "alice"], ["user", "set", "alice", "pop3=off"], ["user", "passwd", "alice"],
])
def test_corrupt_directory_is_a_clear_error(data, args):
    ok(data, "user", "add", "alice", input="secret\n")
    db = data / "directory.db"
    for side in ("directory.db-wal", "directory.db-shm"):
        (data / side).unlink(missing_ok=True)
    db.write_bytes(bytes((i * 37 + 11) & 0xFF for i in range(8192)))
    before = snapshot(data)
    refused(data, *args, input="pw\n", says=[str(db), "not a SQLite database"])
    assert snapshot(data) == before


@pytest.mark.parametrize("args", [
    ["settings", "get", "pop3"], ["settings", "set", "pop3", "workers=2"],
    ["settings", "reset", "pop3", "workers"],
])
def test_corrupt_settings_is_a_clear_error(data, args):
    db = data / "settings.db"
    for side in ("settings.db-wal", "settings.db-shm"):
        (data / side).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database at all\n" * 200)
    before = snapshot(data)
    refused(data, *args, says=[str(db), "not a SQLite database"])
    assert snapshot(data) == before


def test_newer_schema_is_refused(data):
    db = sqlite3.connect(data / "directory.db")
    db.execute("PRAGMA user_version = 999")
    db.commit()
    db.close()
    before = snapshot(data)
    refused(data, "user", "list", says=["directory.db", "schema version 999 is newer"])
    assert snapshot(data) == before


def test_swapped_databases_are_refused(data):
    (data / "directory.db").rename(data / "tmp.db")
    (data / "settings.db").rename(data / "directory.db")
    refused(data, "user", "list", says="not a postern directory database")


# users


@pytest.mark.parametrize("name,says", [
    ("a/b", "user name 'a/b': '/' is not allowed (letters, digits, '.', '_', '-' and one "
            "'@domain')"),
    ("..", "user name '..': must not start with '.' or '-'"),
    ("", "user name '': must not be empty"),
    ("x" * 65, "is longer than 64 bytes"),
    ("x\ty", "user name 'x\\x09y': control characters are not allowed"),
    ("ünï", "non-ASCII characters are not allowed"),
    ("a b", "blanks are not allowed"),
    ("a\\b", "'\\' is not allowed"),
    ("a..b", "'..' is not allowed"),
    ("-x", "must not start with '.' or '-'"),
    ("a@b@c", "only one '@'"),
])
def test_bad_user_names_change_nothing(data, name, says):
    ok(data, "user", "add", "alice", input="secret\n")
    listing = ok(data, "user", "list").stdout
    before = snapshot(data)
    for args in (["user", "add", name], ["user", "del", name], ["user", "show", name],
                 ["user", "passwd", name], ["user", "set", name, "pop3=off"]):
        refused(data, *args, input="pw\n", says=says)
    assert ok(data, "user", "list").stdout == listing
    assert snapshot(data) == before


def test_longest_name_is_accepted(data):
    ok(data, "user", "add", "x" * 64, input="pw\n")
    ok(data, "user", "add", "first.last@example.test", input="pw\n")


def test_duplicate_in_another_case_is_refused(data):
    ok(data, "user", "add", "Alice", input="secret\n")
    listing = ok(data, "user", "list").stdout
    refused(data, "user", "add", "aLICE", input="other\n",
            says="user 'aLICE' already exists (as 'Alice'")
    assert ok(data, "user", "list").stdout == listing
    # lookups ignore case too
    assert "name: Alice" in ok(data, "user", "show", "ALICE").stdout


def test_password_from_stdin_is_yescrypt(data):
    ok(data, "user", "add", "alice", input="correct horse\nsecond line\n")
    ok(data, "user", "add", "bob", input="correct horse")
    show = ok(data, "user", "show", "alice").stdout
    assert "password: set" in show
    assert "password-scheme: yescrypt" in show
    assert "$y$" not in show  # never the hash
    db = sqlite3.connect(data / "directory.db")
    hashes = dict(db.execute("SELECT name, password_hash FROM users"))
    db.close()
    assert hashes["alice"].startswith("$y$")
    assert hashes["alice"] != hashes["bob"]  # salted

    old = hashes["alice"]
    ok(data, "user", "passwd", "alice", input="new secret\n")
    db = sqlite3.connect(data / "directory.db")
    (new,) = db.execute("SELECT password_hash FROM users WHERE name = 'alice'").fetchone()
    db.close()
    assert new.startswith("$y$") and new != old


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_empty_password_is_refused(data, stdin):
    before = snapshot(data)
    refused(data, "user", "add", "alice", input=stdin, says="the password is empty")
    assert snapshot(data) == before
    ok(data, "user", "add", "bob", input="pw\n")
    before = snapshot(data)
    refused(data, "user", "passwd", "bob", input=stdin, says="the password is empty")
    assert snapshot(data) == before


def test_imported_hashes(data):
    sha512 = subprocess.run(["openssl", "passwd", "-6", "-salt", "saltsalt", "secret"],
                            capture_output=True, text=True, check=True).stdout.strip()
    ok(data, "user", "add", "imported", "--password-hash", sha512)
    assert "password-scheme: sha512-crypt" in ok(data, "user", "show", "imported").stdout
    for bad in ("plain", "$1$saltsalt$abcdefghijklmnopqrstuv", sha512[:-4], "$6$"):
        refused(data, "user", "add", "other", "--password-hash", bad, says="password hash")
    refused(data, "user", "show", "other")
    ok(data, "user", "add", "nopw", "--no-password")
    assert "password: none" in ok(data, "user", "show", "nopw").stdout


def test_user_add_options(data):
    ok(data, "user", "add", "shared1", "--kind", "shared", "--quota", "2G", input="pw\n")
    ok(data, "user", "add", "guest1", "--kind=guest", input="pw\n")
    ok(data, "user", "add", "admin1", "--kind", "admin", "--backend", "local", input="pw\n")
    ok(data, "user", "add", "saver", "--save-sent", "on", input="pw\n")
    listing = ok(data, "user", "list").stdout
    assert re.search(r"^saver\s+user\s+on\s+on\s+on\s+local\s+unlimited\s+on$", listing, re.M)
    assert re.search(r"^shared1\s+shared\s+on\s+on\s+on\s+local\s+2G\s+default$", listing, re.M)
    assert re.search(r"^guest1\s+guest\s+off\s+off\s+off\s+local\s+unlimited\s+default$", listing, re.M)
    assert re.search(r"^admin1\s+admin\s+off\s+off\s+off\s+local", listing, re.M)
    before = snapshot(data)
    refused(data, "user", "add", "x1", "--kind", "root", input="pw\n", says="kind 'root'")
    refused(data, "user", "add", "x2", "--quota", "lots", input="pw\n", says="quota: must be")
    refused(data, "user", "add", "x3", "--quota", "0", input="pw\n", says="quota: must be")
    refused(data, "user", "add", "x4", "--backend", "mbx9", input="pw\n",
            says="back end 'mbx9' does not exist")
    refused(data, "user", "add", "x5", "--save-sent", "sometimes", input="pw\n",
            says="save-sent: must be on, off or default")
    assert snapshot(data) == before


def test_user_set_is_all_or_nothing(data):
    ok(data, "user", "add", "alice", input="pw\n")
    show = ok(data, "user", "show", "alice").stdout
    before = snapshot(data)
    for args, says in [
        (["pop3=off", "backend=nope"], "back end 'nope' does not exist"),
        (["pop3=off", "imap4=maybe"], "imap4: must be on or off (got 'maybe')"),
        (["pop3=off", "quota=-1"], "quota: must be"),
        (["pop3=off", "kind=boss"], "kind 'boss' is unknown"),
        (["pop3=off", "send-as=not-an-address"], "send-as: 'not-an-address'"),
        (["pop3=off", "colour=blue"], "expected FIELD=VALUE"),
        (["pop3=off", "pop3=on"], "pop3 given twice"),
        (["pop3=off", "save-sent=perhaps"], "save-sent: must be on, off or default"),
        (["pop3=off", "--save-sent"], "expected FIELD=VALUE"),
    ]:
        refused(data, "user", "set", "alice", *args, says=says)
    assert ok(data, "user", "show", "alice").stdout == show
    assert snapshot(data) == before

    ok(data, "user", "set", "alice", "pop3=off", "imap4=on", "smtp=off", "kind=shared",
       "quota=500M", "send-as=Alice@Example.TEST, info@example.test")
    show = ok(data, "user", "show", "alice").stdout
    for line in ("pop3: off", "imap4: on", "smtp: off", "kind: shared", "quota: 500M",
                 "send-as: Alice@example.test, info@example.test"):
        assert line in show.splitlines(), show
    ok(data, "user", "set", "alice", "quota=unlimited")
    assert "quota: unlimited" in ok(data, "user", "show", "alice").stdout
    assert "save-sent: default" in ok(data, "user", "show", "alice").stdout
    ok(data, "user", "set", "alice", "--save-sent", "on", "--pop3=on")
    show = ok(data, "user", "show", "alice").stdout
    assert "save-sent: on" in show and "pop3: on" in show
    ok(data, "user", "set", "alice", "save-sent=default")
    assert "save-sent: default" in ok(data, "user", "show", "alice").stdout
    refused(data, "user", "set", "nobody", "pop3=off", says="no such user 'nobody'")


def test_user_del(data):
    ok(data, "user", "add", "alice", input="pw\n")
    ok(data, "user", "del", "ALICE")
    refused(data, "user", "del", "alice", says="no such user 'alice'")
    refused(data, "user", "show", "alice", says="no such user 'alice'")
    assert ok(data, "user", "list").stdout.splitlines()[1:] == []


# settings


@pytest.mark.parametrize("service,pairs,says", [
    ("pop3", ["max-command-size=5"],
     "pop3: max-command-size: must be a number from 40 to 1024 (got '5')"),
    ("imap4", ["ssl-bindings=1.2.3.4"], "imap4: ssl-bindings: '1.2.3.4'"),
    ("pop3", ["login-type=foo"],
     "pop3: login-type: must be one of plain-text-login, plain-text-authentication or "
     "secure-login (got 'foo')"),
    ("pop3", ["no-such-key=1"], "pop3: unknown setting 'no-such-key'"),
    ("pop3", ["workers=2", "max-command-size=abc"], "pop3: max-command-size:"),
    ("pop3", ["max-command-size=100", "login-type=foo"], "pop3: login-type:"),
    ("pop3", ["workers=2", "workers"], "'workers': expected KEY=VALUE"),
    ("pop3", ["workers=2", "workers=3"], "workers: given twice"),
    ("imap4", ["authenticated-connection-timeout=2h"],
     "must be a duration from 30 seconds to 1 hour"),
    ("imap4", ["protocol-log-enabled=perhaps"], "must be true or false"),
    ("imap4", ["max-connections=0"], "or 'unlimited'"),
    ("imap4", ["trusted-networks=10.0.0.1/8"], "did you mean 10.0.0.0/8?"),
    ("imap4", ["external-connection-settings=mail.example.test:993:STARTTLS"],
     "encryption must be SSL, TLS or none"),
    ("imap4", ["banner=two\nlines"], "printable ASCII"),
    ("lmtp", ["unix-socket=../escape.sock"], "'..'"),
    ("imap4", ["ssl-bindings=unix:/tmp/x.sock"], "back ends only"),
    ("submission", ["dns-resolvers=dns.example.com"], "'dns.example.com': not an IP address"),
    ("submission", ["dns-resolvers=127.0.0.1:99999"], "not an IP address"),
    ("submission", ["dns-resolvers=127.0.0.1, 127.0.0.1"], "listed twice"),
    ("submission", ["save-sent=sometimes"], "must be true or false"),
    ("submission", ["mx-port=0"], "must be a number from 1 to 65535"),
])
def test_bad_settings_change_nothing(data, service, pairs, says):
    key = pairs[-1].partition("=")[0]
    before_values = {s: settings_of(data, s) for s in ("imap4", "pop3", "lmtp")}
    before = snapshot(data)
    r = refused(data, "settings", "set", service, *pairs, says=says)
    assert key in r.stderr
    assert {s: settings_of(data, s) for s in ("imap4", "pop3", "lmtp")} == before_values
    assert snapshot(data) == before


def test_unknown_service(data):
    before = snapshot(data)
    for args in (["settings", "set", "smtp", "workers=2"], ["settings", "get", "smtp"],
                 ["settings", "reset", "smtp", "workers"]):
        refused(data, *args, says="unknown service 'smtp' (services: imap4, imap4-backend, "
                                  "pop3, pop3-backend, submission, lmtp, http)")
    refused(data, "settings", "get", "pop3", "bogus", says="pop3: unknown setting 'bogus'")
    refused(data, "settings", "reset", "pop3", "workers", "bogus", says="'bogus'")
    assert snapshot(data) == before


def test_settings_set_get_reset(data):
    r = ok(data, "settings", "set", "pop3", "max-command-size=100",
           "login-type=PlainTextLogin", "pre-authenticated-connection-timeout=00:02:00",
           "protocol-log-enabled=yes", "trusted-networks=10.0.0.0/8,::1",
           "external-connection-settings=Mail.Example.Test:995:ssl")
    assert "pop3: login-type = plain-text-login" in r.stdout
    pop3 = settings_of(data, "pop3")
    assert pop3["max-command-size"] == "100"
    assert pop3["login-type"] == "plain-text-login"
    assert pop3["pre-authenticated-connection-timeout"] == "120"
    assert pop3["protocol-log-enabled"] == "true"
    assert pop3["trusted-networks"] == "10.0.0.0/8, ::1/128"
    assert pop3["external-connection-settings"] == "mail.example.test:995:SSL"
    # other services are untouched
    assert settings_of(data, "pop3-backend")["max-command-size"] == "512"
    ok(data, "settings", "set", "submission", "dns-resolvers=192.0.2.53,[2001:DB8::53]:5353",
       "save-sent=on")
    sub = settings_of(data, "submission")
    assert sub["dns-resolvers"] == "192.0.2.53, [2001:db8::53]:5353"
    assert sub["save-sent"] == "true" and sub["mx-port"] == "25"

    r = ok(data, "settings", "get", "pop3", "login-type", "workers")
    assert r.stdout.splitlines() == ["login-type = plain-text-login", "workers    = 1"]

    ok(data, "settings", "reset", "pop3", "max-command-size", "login-type")
    pop3 = settings_of(data, "pop3")
    assert pop3["max-command-size"] == "512"
    assert pop3["login-type"] == "secure-login"
    assert pop3["protocol-log-enabled"] == "true"

    # reset goes back to what init chose for this instance
    ok(data, "settings", "set", "imap4", "ssl-bindings=[::1]:20993")
    assert settings_of(data, "imap4")["ssl-bindings"] == "[::1]:20993"
    ok(data, "settings", "reset", "imap4", "ssl-bindings")
    assert settings_of(data, "imap4")["ssl-bindings"] == "127.0.0.1:10993"


def test_every_key_is_listed_with_help(data):
    keys = list(settings_of(data, "imap4"))
    assert keys[0] == "startup"
    assert "max-command-size" in keys and "login-type" in keys
    r = ok(data, "settings", "help", "imap4")
    for key in keys:
        assert re.search(rf"^{re.escape(key)}$", r.stdout, re.M), key


def _add_on_terminal(datadir, name, first, second):
    """Run `user add NAME` on a pseudo-terminal, typing the two passwords."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(POSTERNCTL), ["posternctl", "-d", str(datadir), "user", "add", name])
    out = b""

    def read_until(marker):
        nonlocal out
        while marker not in out:
            ready, _, _ = select.select([fd], [], [], 10)
            assert ready, f"no {marker!r} in {out!r}"
            out += os.read(fd, 1024)

    read_until(b"New password for")
    os.write(fd, first + b"\n")
    read_until(b"Retype the password: ")
    os.write(fd, second + b"\n")
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_password_on_a_terminal_is_asked_twice_without_echo(data):
    code, out = _add_on_terminal(data, "tty1", b"s3cret-word", b"s3cret-word")
    assert code == 0, out
    assert "s3cret-word" not in out
    assert "password-scheme: yescrypt" in ok(data, "user", "show", "tty1").stdout
    before = snapshot(data)
    code, out = _add_on_terminal(data, "tty2", b"one", b"two")
    assert code == 1
    assert "the two passwords differ" in out
    assert snapshot(data) == before
