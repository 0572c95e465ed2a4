"""Metrics: real sessions against a running instance, and the exact change
of every counter they touch, read with `posternctl metrics` and parsed by a
strict parser of the Prometheus text format (0.0.4): malformed output fails
the test before any value is looked at."""

import base64
import math
import os
import re
import signal
import smtplib
import socket

import pytest

from conftest import SANITIZER_MARKS, Instance, deliver, tls_context, wait_until
from test_submission import Sink

PASSWORD = "Secret-pw1"

# ---- a strict parser of the exposition format ----

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
VALUE_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]Inf|NaN")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class Metrics:
    """families: name -> {"help", "type"}; samples: (name, labels) -> value,
    labels a sorted tuple of (key, value)."""

    def __init__(self, families, samples):
        self.families = families
        self.samples = samples

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def series(self, name):
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def _parse_sample(line):
    m = NAME_RE.match(line)
    assert m, f"no metric name: {line!r}"
    name, i = m.group(0), m.end()
    labels = {}
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            m = LABEL_RE.match(line, i)
            assert m, f"bad label name at {i}: {line!r}"
            key, i = m.group(0), m.end()
            assert line[i:i + 2] == '="', f"bad label syntax: {line!r}"
            i += 2
            value = []
            while True:
                assert i < len(line), f"unterminated label value: {line!r}"
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    esc = line[i + 1:i + 2]
                    assert esc in ("\\", '"', "n"), f"bad escape: {line!r}"
                    value.append({"\\": "\\", '"': '"', "n": "\n"}[esc])
                    i += 2
                else:
                    value.append(c)
                    i += 1
            assert key not in labels, f"label {key} twice: {line!r}"
            labels[key] = "".join(value)
            if line[i:i + 1] == ",":
                i += 1
                continue
            assert line[i:i + 1] == "}", f"labels not closed: {line!r}"
            i += 1
            break
    assert line[i:i + 1] == " ", f"no space before the value: {line!r}"
    text = line[i + 1:]
    assert VALUE_RE.fullmatch(text), f"bad value (or a timestamp we never write): {line!r}"
    return name, labels, float(text)


def parse_exposition(text):
    assert text.endswith("\n"), "the text must end with a newline"
    families, samples = {}, {}
    current = None
    finished = set()
    for line in text[:-1].split("\n"):
        assert line != "", "empty line"
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) (.+)", line)
            assert m, f"bad comment line: {line!r}"
            kind, name, rest = m.groups()
            assert NAME_RE.fullmatch(name), line
            fam = families.setdefault(name, {})
            assert name not in finished, f"{name} declared again after its samples"
            if kind == "HELP":
                assert "help" not in fam and "type" not in fam, f"HELP after TYPE: {name}"
                assert "\\" not in rest.replace("\\\\", "").replace("\\n", ""), line
                fam["help"] = rest
            else:
                assert rest in TYPES and "type" not in fam, line
                fam["type"] = rest
                if current is not None:
                    finished.add(current)
                current = name
            continue
        name, labels, value = _parse_sample(line)
        family = name
        if current is not None and families[current].get("type") == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                if name == current + suffix:
                    family = current
        assert family == current, f"sample {name} outside its family {current}"
        key = (name, tuple(sorted(labels.items())))
        assert key not in samples, f"duplicate series: {line!r}"
        if families[family]["type"] == "counter":
            assert name.endswith("_total") and value >= 0 and math.isfinite(value), line
        if families[family]["type"] == "histogram" and name.endswith("_bucket"):
            assert "le" in labels, line
        samples[key] = value
    for name, fam in families.items():
        assert "help" in fam and "type" in fam, f"{name} lacks HELP or TYPE"
        if fam["type"] == "histogram":
            _check_histogram(name, samples)
    return Metrics(families, samples)


def _check_histogram(name, samples):
    groups = {}
    for (n, labels), v in samples.items():
        if n == name + "_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            le = dict(labels)["le"]
            groups.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
    for rest, buckets in groups.items():
        buckets.sort()
        assert buckets[-1][0] == math.inf, f"{name}{rest}: no +Inf bucket"
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{name}{rest}: buckets not cumulative"
        assert samples[(name + "_count", rest)] == counts[-1], f"{name}{rest}: _count"
        assert samples[(name + "_sum", rest)] >= 0


def test_parser_refuses_malformed_text():
    good = ("# HELP a_total x\n# TYPE a_total counter\n"
            "a_total{k=\"v \\\" \\\\ \\n\"} 1\n")
    m = parse_exposition(good)
    assert m.get("a_total", k='v " \\ \n') == 1
    bad = [
        "# HELP a_total x\n# TYPE a_total counter\na_total 1",  # no final newline
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"\\x\"} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\",} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1 123\n",
        "# HELP a_total x\n# TYPE a_total counter\nb_total 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_exposition(text)


# ---- the instance ----

def scrape(inst):
    r = inst.ctl("metrics")
    assert r.returncode == 0, r.stderr
    return parse_exposition(r.stdout)


# the families whose every change a test states exactly
EXACT = ("postern_connections_total", "postern_logins_total", "postern_auth_verdicts_total",
         "postern_commands_total", "postern_command_duration_seconds_count",
         "postern_deliveries_total", "postern_worker_restarts_total")


def changes(before, after, families=EXACT):
    out = {}
    for (name, labels), v in after.samples.items():
        if name in families:
            d = v - before.samples.get((name, labels), 0.0)
            if d != 0:
                out[(name,) + labels] = d
    return out


def S(name, value=1, **labels):
    return ((name,) + tuple(sorted(labels.items())), value)


def commands(service, *names):
    """commands_total and the histogram's _count, +1 per name."""
    out = []
    for n in names:
        out.append(S("postern_commands_total", service=service, command=n))
        out.append(S("postern_command_duration_seconds_count", service=service, command=n))
    return out


def login(service, reason="none", n=1):
    return S("postern_logins_total", n, service=service,
             result="ok" if reason == "none" else "failed", reason=reason)


def verdict(service, result, n=1):
    return S("postern_auth_verdicts_total", n, service=service, result=result)


def conns(service, n=1):
    return S("postern_connections_total", n, service=service)


def assert_changes(before, after, expected, families=EXACT):
    got = changes(before, after, families)
    want = {}
    for k, v in expected:
        want[k] = want.get(k, 0) + v
    assert got == want, "\n".join(
        [f"unexpected change: {k} {v}" for k, v in got.items() if want.get(k) != v] +
        [f"missing change: {k} {v}" for k, v in want.items() if got.get(k) != v])


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    """One instance for the whole module: its start is the slow part (under
    the sanitizers most of all), and every test states the changes its own
    sessions make, so they need no fresh counters."""
    tmp = tmp_path_factory.mktemp("metrics")
    if os.geteuid() == 0:
        for p in (tmp, tmp.parent, tmp.parent.parent):
            os.chmod(p, 0o755)
    running = Instance(tmp / "data")
    try:
        running.init()
        running.start()
        for svc in ("pop3", "imap4", "submission"):
            running.ctl("settings", "set", svc, "authentication-failure-delay=0",
                        "trusted-networks=127.0.0.0/8", check=True)
        if os.geteuid() == 0:
            running.ctl("settings", "set", "lmtp", "unix-socket-mode=0660",
                        "unix-socket-group=postern-front", check=True)
        running.ctl("service", "start", "pop3-backend", "pop3", "imap4-backend", "imap4",
                    check=True)
        for name, kind in (("alice", "user"), ("bob", "user"), ("gina", "guest")):
            running.ctl("user", "add", name, "--kind", kind, input=PASSWORD + "\n",
                        check=True)
        # lmtp and submission start automatically
        assert wait_until(lambda: _connectable(running.port("submission")), timeout=15)
        yield running
    finally:
        running.stop()
        running.kill_all()
    log = running.read_log()
    found = [m for m in SANITIZER_MARKS if m in log]
    assert not found, f"sanitizer report in posternd's log:\n{log[-6000:]}"


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def settled(inst):
    """A scrape once no connection is open any more (sessions that just
    ended are freed from the loop, a moment after the client saw the end)."""
    def quiet():
        m = scrape(inst)
        return m if all(v == 0 for v in m.series("postern_connections_open").values()) else None
    m = wait_until(quiet, timeout=10)
    assert m, scrape(inst).series("postern_connections_open")
    return m


class Line:
    """A line-based client over TLS (implicit) or plain TCP."""

    def __init__(self, port, tls=True):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock = tls_context().wrap_socket(s) if tls else s
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def until(self, prefix):
        while True:
            line = self.line()
            if line.startswith(prefix):
                return line

    def close(self):
        self.sock.close()


def pop_session(inst, commands_after_login=(), password=PASSWORD, user="alice"):
    c = Line(inst.port("pop3", tls=True))
    assert c.line().startswith("+OK")
    c.send("USER " + user)
    c.line()
    c.send("PASS " + password)
    answer = c.line()
    if answer.startswith("+OK"):
        for cmd, multiline in commands_after_login:
            c.send(cmd)
            first = c.line()
            if multiline and first.startswith("+OK"):
                c.until(".")
    c.send("QUIT")
    try:
        c.until("+OK")
    except EOFError:
        pass
    c.close()
    return answer


# ---- the tests ----

def test_exposition_is_strict_and_complete(inst):
    m = scrape(inst)
    want = {
        "postern_connections_open": "gauge", "postern_connections_total": "counter",
        "postern_logins_total": "counter", "postern_auth_verdicts_total": "counter",
        "postern_auth_tarpit_delays_total": "counter", "postern_commands_total": "counter",
        "postern_command_duration_seconds": "histogram", "postern_deliveries_total": "counter",
        "postern_queue_messages": "gauge", "postern_queue_deliveries_total": "counter",
        "postern_worker_restarts_total": "counter",
    }
    assert {n: f["type"] for n, f in m.families.items()} == want
    services = {"imap4", "imap4-backend", "pop3", "pop3-backend", "submission", "lmtp", "http"}
    assert {dict(l)["service"] for l in m.series("postern_connections_total")} == services
    assert {dict(l)["service"] for l in m.series("postern_worker_restarts_total")} == \
        services | {"authd"}
    reasons = {dict(l)["reason"] for l in m.series("postern_logins_total")}
    assert reasons == {"none", "bad-credentials", "disabled", "account-kind", "login-type",
                       "limit", "tempfail"}
    assert m.get("postern_queue_messages") == 0


def test_pop3_sessions_and_an_lmtp_delivery(inst):
    before = settled(inst)
    deliver(inst, "alice@example.test",
            b"From: a@example.org\r\nSubject: one\r\n\r\nbody\r\n")
    assert pop_session(inst, [("STAT", False), ("LIST", True), ("RETR 1", True),
                              ("NOOP", False), ("XYZZY", False)]).startswith("+OK")
    assert pop_session(inst, password="wrong").startswith("-ERR")
    assert pop_session(inst, user="nobody").startswith("-ERR")
    after = settled(inst)
    assert_changes(before, after, [
        conns("lmtp"), *commands("lmtp", "LHLO", "MAIL", "RCPT", "DATA", "QUIT"),
        S("postern_deliveries_total", service="lmtp", result="delivered"),
        conns("pop3", 3), login("pop3"), login("pop3", "bad-credentials", 2),
        verdict("pop3", "ok"), verdict("pop3", "wrong-password"), verdict("pop3", "unknown-user"),
        conns("pop3-backend"),
        *commands("pop3-backend", "XLOGIN", "STAT", "LIST", "RETR", "NOOP", "unknown", "QUIT"),
    ])
    # the latency histogram of RETR got exactly this one observation
    retr = {dict(l)["le"]: v - before.get("postern_command_duration_seconds_bucket", **dict(l))
            for l, v in after.series("postern_command_duration_seconds_bucket").items()
            if dict(l)["command"] == "RETR" and dict(l)["service"] == "pop3-backend"}
    assert retr["+Inf"] == 1 and sorted(retr.values())[0] >= 0
    assert after.get("postern_command_duration_seconds_sum", service="pop3-backend",
                     command="RETR") < 10


def test_imap_logins_good_and_refused(inst):
    before = settled(inst)
    c = Line(inst.port("imap4", tls=True))
    c.until("* OK")
    for tag, cmd in (("a", "LOGIN alice " + PASSWORD), ("b", "SELECT INBOX"),
                     ("c", "UID FETCH 1:* (FLAGS)"), ("d", "NOOP"), ("e", "XYZZY"),
                     ("f", "LOGOUT")):
        c.send(f"{tag} {cmd}")
        answer = c.until(tag + " ")
        assert answer.split()[1] == ("BAD" if tag == "e" else "OK"), answer
    c.close()

    def imap_login(user, password, tls=True):
        c = Line(inst.port("imap4", tls=tls), tls=tls)
        c.until("* OK")
        c.send(f"x LOGIN {user} {password}")
        answer = c.until("x ")
        c.send("y LOGOUT")
        c.close()
        return answer

    assert imap_login("alice", "wrong").startswith("x NO")
    assert "PRIVACYREQUIRED" in imap_login("alice", PASSWORD, tls=False)
    inst.ctl("user", "set", "alice", "imap4=off", check=True)
    assert imap_login("alice", PASSWORD).startswith("x NO")
    inst.ctl("user", "set", "alice", "imap4=on", check=True)
    assert imap_login("gina", PASSWORD).startswith("x NO")
    after = settled(inst)
    assert_changes(before, after, [
        conns("imap4", 5), login("imap4"), login("imap4", "bad-credentials"),
        login("imap4", "login-type"), login("imap4", "disabled"),
        login("imap4", "account-kind"),
        verdict("imap4", "ok"), verdict("imap4", "wrong-password"), verdict("imap4", "refused", 2),
        conns("imap4-backend"),
        *commands("imap4-backend", "XLOGIN", "SELECT", "UID FETCH", "NOOP", "unknown", "LOGOUT"),
    ])


def smtp_auth_refused(inst, user, password):
    c = Line(inst.port("submission", tls=True))
    assert c.line().startswith("220")
    c.send("EHLO client.example")
    c.until("250 ")
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    c.send("AUTH PLAIN " + token)
    answer = c.line()
    c.send("QUIT")
    c.until("221")
    c.close()
    return answer


def test_submission_and_the_queue(inst):
    sink = Sink()
    try:
        sink.rcpt_reply["nosuch@example.org"] = b"550 5.1.1 no such user here"
        inst.ctl("settings", "set", "submission", f"smarthost=127.0.0.1:{sink.port}",
                 "queue-retry-interval=1", "queue-max-retry-interval=2", check=True)
        before = settled(inst)
        c = smtplib.SMTP_SSL("127.0.0.1", inst.port("submission", tls=True),
                             context=tls_context(), timeout=30)
        c.ehlo("client.example")
        c.login("alice", PASSWORD)
        msg = b"From: alice@example.test\r\nSubject: hi\r\n\r\nbody\r\n"
        assert c.sendmail("alice@example.test", ["bob@example.test", "x@example.org"], msg) == {}
        assert c.sendmail("alice@example.test", ["nosuch@example.org"], msg) == {}
        c.quit()
        assert smtp_auth_refused(inst, "alice", "wrong").startswith("535")
        assert smtp_auth_refused(inst, "gina", PASSWORD).startswith("525")

        def queue_done():
            m = scrape(inst)
            moved = sum(m.series("postern_queue_deliveries_total").values()) - \
                sum(before.series("postern_queue_deliveries_total").values())
            return m if m.get("postern_queue_messages") == 0 and moved == 4 else None
        assert wait_until(queue_done, timeout=30), \
            scrape(inst).series("postern_queue_deliveries_total")
        after = settled(inst)
        # bob's copy and the report to alice about nosuch went over LMTP
        assert_changes(before, after, [
            conns("submission", 3), login("submission"),
            login("submission", "bad-credentials"), login("submission", "account-kind"),
            verdict("submission", "ok"), verdict("submission", "wrong-password"),
            verdict("submission", "refused"),
            *commands("submission", "EHLO", "EHLO", "EHLO", "AUTH", "AUTH", "AUTH", "MAIL",
                      "MAIL", "RCPT", "RCPT", "RCPT", "DATA", "DATA", "QUIT", "QUIT", "QUIT"),
            S("postern_deliveries_total", service="submission", result="delivered"),
            S("postern_deliveries_total", service="submission", result="queued", value=2),
            conns("lmtp", 2), *commands("lmtp", "LHLO", "MAIL", "RCPT", "DATA", "QUIT") * 2,
            S("postern_deliveries_total", service="lmtp", result="delivered", value=2),
        ])
        # the queue: two local deliveries, x relayed, nosuch bounced
        q = {dict(l)["route"] + "/" + dict(l)["result"]:
             v - before.get("postern_queue_deliveries_total", **dict(l))
             for l, v in after.series("postern_queue_deliveries_total").items()}
        assert q == {"local/delivered": 2, "local/deferred": 0, "local/bounced": 0,
                     "remote/delivered": 1, "remote/deferred": 0, "remote/bounced": 1}
    finally:
        sink.close()


def test_queue_size_while_the_smarthost_is_down(inst):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    inst.ctl("settings", "set", "submission", f"smarthost=127.0.0.1:{port}",
             "queue-retry-interval=1", "queue-max-retry-interval=2", check=True)
    before = settled(inst)
    assert before.get("postern_queue_messages") == 0

    def delta(m, name, **labels):
        return m.get(name, **labels) - before.get(name, **labels)
    c = smtplib.SMTP_SSL("127.0.0.1", inst.port("submission", tls=True),
                         context=tls_context(), timeout=30)
    c.ehlo("client.example")
    c.login("alice", PASSWORD)
    assert c.sendmail("alice@example.test", ["later@example.org"],
                      b"From: alice@example.test\r\n\r\nbody\r\n") == {}
    c.quit()
    m = scrape(inst)
    assert m.get("postern_queue_messages") == 1
    assert delta(m, "postern_deliveries_total", service="submission", result="queued") == 1
    assert wait_until(lambda: delta(scrape(inst), "postern_queue_deliveries_total",
                                    route="remote", result="deferred") >= 1, timeout=15)
    sink = Sink()
    try:
        inst.ctl("settings", "set", "submission", f"smarthost=127.0.0.1:{sink.port}",
                 check=True)
        inst.ctl("queue", "flush", check=True)
        assert wait_until(lambda: sink.messages, timeout=20)
        m = wait_until(lambda: (lambda m: m if m.get("postern_queue_messages") == 0 else None)(
            scrape(inst)), timeout=10)
        assert m and delta(m, "postern_queue_deliveries_total", route="remote",
                           result="delivered") == 1
    finally:
        sink.close()


def _pids(inst, service):
    _, st = inst.status(service)
    text = st.get(service, {}).get("pids", "-")
    return [int(p) for p in text.split(",") if p.strip().isdigit()]


def test_killed_worker_keeps_the_counts_and_drops_its_connections(inst):
    before = settled(inst)
    c = Line(inst.port("pop3", tls=True))
    assert c.line().startswith("+OK")
    c.send("USER alice")
    c.line()
    c.send("PASS " + PASSWORD)
    assert c.line().startswith("+OK")
    m = scrape(inst)
    assert m.get("postern_connections_open", service="pop3") == 1
    assert m.get("postern_connections_open", service="pop3-backend") == 1
    [pid] = _pids(inst, "pop3")
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: _pids(inst, "pop3") not in ([], [pid]), timeout=5)
    c.close()
    # the dead worker's open connection is gone; what it counted stays
    after = settled(inst)
    assert_changes(before, after, [
        conns("pop3"), login("pop3"), verdict("pop3", "ok"),
        conns("pop3-backend"), *commands("pop3-backend", "XLOGIN"),
        S("postern_worker_restarts_total", service="pop3"),
    ])
    # the new worker counts on in the same region
    assert pop_session(inst).startswith("+OK")
    again = settled(inst)
    assert again.get("postern_logins_total", service="pop3", result="ok", reason="none") == \
        after.get("postern_logins_total", service="pop3", result="ok", reason="none") + 1
    assert again.get("postern_worker_restarts_total", service="pop3") == 1


def test_tarpit_delays_are_counted(inst):
    inst.ctl("settings", "set", "pop3", "trusted-networks=", check=True)
    try:
        before = settled(inst)
        # the first failure from an address is not delayed, the second is (1 s)
        for _ in range(2):
            assert pop_session(inst, password="wrong").startswith("-ERR")
        after = settled(inst)
    finally:
        inst.ctl("settings", "set", "pop3", "trusted-networks=127.0.0.0/8", check=True)
    assert after.get("postern_auth_tarpit_delays_total", service="pop3") - \
        before.get("postern_auth_tarpit_delays_total", service="pop3") == 1
    assert_changes(before, after, [conns("pop3", 2), login("pop3", "bad-credentials", 2),
                                   verdict("pop3", "wrong-password", 2)])


def test_output_file_for_the_textfile_collector(inst, tmp_path):
    out = tmp_path / "postern.prom"
    r = inst.ctl("metrics", "--output", str(out))
    assert r.returncode == 0 and r.stdout == "", r.stderr
    m = parse_exposition(out.read_text())
    assert "postern_logins_total" in m.families
    assert not (tmp_path / "postern.prom.tmp").exists()
    r = inst.ctl("metrics", "--bogus")
    assert r.returncode == 2 and "usage" in r.stderr


def test_no_master_running(tmp_path):
    r = Instance(tmp_path).ctl("metrics")
    assert r.returncode == 3 and "not running" in r.stderr
