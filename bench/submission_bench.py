#!/usr/bin/python3
"""Submission benchmark: postern's submission service (with its local
delivery) against Postfix's submission port relaying into Dovecot's LMTP, on
the same machine, in the same run, with the same client.

  bench/submission_bench.py [--messages N] [--runs R] [--sizes 4,100]
                            [--clients 1,16]

Every client is its own user: it connects to port 587, STARTTLS, AUTH PLAIN
(not timed), then sends its share of N messages to its own address in one
session, one transaction each. Two figures per case:

  submitted  messages / time until the last 250 after the data
  delivered  messages / time until the last message is a file in the
             mailbox store (postern: DATA/mail/USER/cur; Dovecot:
             home/USER/Maildir/new and cur)

postern answers 250 only after the local delivery, so both figures are
close; Postfix answers once the message is in its queue and delivers over
LMTP afterwards. Each case runs R times, the two servers in alternating
order; the median and the range are printed, and the ratio of the medians
(postern / reference).

Both servers are private instances on loopback in a temporary folder:
posternd as set up by `posternctl init` (one worker per service); Postfix 3
with its own config_directory and queue_directory (master.cf: the
submission port on 127.0.0.1 and the services the queue needs, nothing
else), SASL and LMTP delivery through a private Dovecot (auth-client and
lmtp sockets in its run folder). Postfix must be installed
(apt-get install postfix, "No configuration"), and Dovecot
(dovecot-lmtpd). Run as root (Postfix's master needs it). Not part of the
tests.
"""

import argparse
import concurrent.futures
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pop3_bench as common  # noqa: E402

PASSWORD = common.PASSWORD
DOMAIN = "example.test"


def message(user, size, n):
    head = (f"From: {user}@{DOMAIN}\r\nTo: {user}@{DOMAIN}\r\n"
            f"Subject: submission benchmark {n}\r\n"
            f"Message-ID: <sub{n}.{size}.{user}.{time.monotonic_ns()}@{DOMAIN}>\r\n"
            f"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n").encode()
    line = b"submission benchmark body text, ordinary words in an ordinary line\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


class Client:
    """One user's session: logged in before the clock starts."""

    def __init__(self, port, user):
        self.user = user
        self.smtp = smtplib.SMTP("127.0.0.1", port, timeout=600)
        self.smtp.ehlo("bench.example")
        self.smtp.starttls(context=common.tls_context())
        self.smtp.ehlo("bench.example")
        self.smtp.login(user, PASSWORD)

    def send(self, count, size):
        addr = f"{self.user}@{DOMAIN}"
        for n in range(count):
            refused = self.smtp.sendmail(addr, [addr], message(self.user, size, n))
            assert not refused, refused
        return time.perf_counter()

    def close(self):
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass


def count_files(dirs):
    total = 0
    for d in dirs:
        try:
            with os.scandir(d) as it:
                total += sum(1 for e in it if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return total


def run_case(server, users, total, size):
    """(submitted/s, delivered/s) for one case against one server."""
    per = max(1, total // len(users))
    dirs = [d for u in users for d in server.maildirs(u)]
    before = count_files(dirs)
    want = before + per * len(users)
    clients = [Client(server.port, u) for u in users]
    try:
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
            ends = list(pool.map(lambda c: c.send(per, size), clients))
        submitted = max(ends)
        while True:
            if count_files(dirs) >= want:
                delivered = time.perf_counter()
                break
            if time.perf_counter() - submitted > 300:
                raise RuntimeError(f"{server.name}: only {count_files(dirs) - before} of "
                                   f"{want - before} messages arrived")
            time.sleep(0.005)
    finally:
        for c in clients:
            c.close()
    n = per * len(users)
    return n / (submitted - start), n / (delivered - start)


class Postern(common.Postern):
    name = "postern"

    @property
    def port(self):
        return self.offset + 587

    def start(self, workers=1):
        super().start()
        common.wait_port(self.port)
        if workers != 1:
            for svc in ("submission", "lmtp"):
                subprocess.run([common.POSTERNCTL, "-d", self.dir, "settings", "set", svc,
                                f"workers={workers}"], check=True, capture_output=True)
            time.sleep(1)
            common.wait_port(self.port)

    def add_users(self, users):
        h = self.password_hash()
        for u in users:
            subprocess.run([common.POSTERNCTL, "-d", self.dir, "user", "add", u,
                            "--password-hash", h], check=True, capture_output=True)

    def maildirs(self, user):
        return [self.dir / "mail" / user / "cur", self.dir / "mail" / user / "new"]


class Dovecot:
    """Dovecot for Postfix: SASL (auth-client) and LMTP sockets, nothing on
    the network."""

    def __init__(self, top, password_hash):
        self.dir = top / "dovecot"
        self.hash = password_hash
        self.proc = None

    def start(self, users):
        d = self.dir
        for sub in ("run", "state", "home"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "passwd").write_text("".join(f"{u}:{{CRYPT}}{self.hash}::::::\n" for u in users))
        user = "postern-mail" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        os.chmod(d, 0o755)
        if os.geteuid() == 0:
            shutil.chown(d / "home", user, user)
        (d / "dovecot.conf").write_text(f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
ssl = no
auth_mechanisms = plain login
auth_username_format = %Ln
disable_plaintext_auth = no
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {d}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={user} home={d}/home/%u
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
""")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(d / "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        for _ in range(200):
            if (d / "run" / "lmtp").exists() and (d / "run" / "auth-client").exists():
                return
            time.sleep(0.05)
        raise RuntimeError("Dovecot did not come up: " + (d / "dovecot.log").read_text())

    def stop(self):
        common.Dovecot.stop(self)


class Postfix:
    """A private Postfix: its own config and queue, the submission port on
    127.0.0.1, mail for example.test to Dovecot's LMTP."""

    name = "postfix+dovecot"

    def __init__(self, top, cert, key, dovecot):
        self.dir = top / "postfix"
        self.cert, self.key, self.dovecot = cert, key, dovecot
        self.proc = None

    def start(self):
        d = self.dir
        conf, queue, data = d / "etc", d / "queue", d / "data"
        for p in (conf, queue, data):
            p.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)
        shutil.chown(data, "postfix", "postfix")
        self.port = common.free_port_block(1)
        dv = self.dovecot.dir / "run"
        (conf / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.{DOMAIN}
mydomain = {DOMAIN}
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
virtual_mailbox_domains = {DOMAIN}
virtual_transport = lmtp:unix:{dv}/lmtp
smtpd_tls_cert_file = {self.cert}
smtpd_tls_key_file = {self.key}
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = {dv}/auth-client
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
biff = no
smtputf8_enable = no
""")
        (conf / "master.cf").write_text(f"""
127.0.0.1:{self.port} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""")
        # the queue's folders as postfix-files wants them; master is run
        # directly, in the foreground: the postfix(1) wrapper would want
        # this folder listed in a system-wide main.cf
        for name, group, mode in (("active", None, 0o700), ("bounce", None, 0o700),
                                  ("corrupt", None, 0o700), ("defer", None, 0o700),
                                  ("deferred", None, 0o700), ("flush", None, 0o700),
                                  ("hold", None, 0o700), ("incoming", None, 0o700),
                                  ("private", None, 0o700), ("maildrop", "postdrop", 0o730),
                                  ("public", "postdrop", 0o710), ("saved", None, 0o700),
                                  ("trace", None, 0o700)):
            (queue / name).mkdir(exist_ok=True)
            shutil.chown(queue / name, "postfix", group or "postfix")
            os.chmod(queue / name, mode)
        (queue / "pid").mkdir(exist_ok=True)
        self.log = open(d / "master.out", "wb")
        self.proc = subprocess.Popen(["/usr/lib/postfix/sbin/master", "-c", str(conf), "-d"],
                                     env=dict(os.environ, MAIL_CONFIG=str(conf)),
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        try:
            common.wait_port(self.port)
        except RuntimeError:
            raise RuntimeError("Postfix did not come up: " + self.read_logs())

    def read_logs(self):
        text = ""
        for name in ("master.out", "maillog"):
            try:
                text += (self.dir / name).read_text(errors="replace")[-3000:]
            except OSError:
                pass
        return text

    def maildirs(self, user):
        home = self.dovecot.dir / "home" / user / "Maildir"
        return [home / "new", home / "cur"]

    def stop(self):
        common.Dovecot.stop(self)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=160, help="messages per case and run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="4,100", help="message sizes in KiB")
    ap.add_argument("--clients", default="1,16")
    ap.add_argument("--postern-workers", type=int, default=1,
                    help="workers of postern's submission and lmtp services (1 as installed)")
    args = ap.parse_args()
    for tool, pkg in (("dovecot", "dovecot-lmtpd"), ("postfix", "postfix")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install {pkg}")
    if os.geteuid() != 0:
        sys.exit("run as root: Postfix's master needs it")
    sizes = [int(s) * 1024 for s in args.sizes.split(",")]
    client_counts = [int(c) for c in args.clients.split(",")]
    users = [f"b{i}" for i in range(max(client_counts))]
    top = Path(tempfile.mkdtemp(prefix="postern-submission-bench-"))
    os.chmod(top, 0o755)
    postern = Postern(top)
    dovecot = postfix = None
    try:
        postern.start(args.postern_workers)
        postern.add_users(users)
        dovecot = Dovecot(top, postern.password_hash())
        dovecot.start(users)
        postfix = Postfix(top, postern.dir / "tls/server.crt", postern.dir / "tls/server.key",
                          dovecot)
        postfix.start()
        # one message each first: stores, queues and TLS caches exist before timing
        for server in (postern, postfix):
            run_case(server, users, len(users), 4096)
        print(f"messages per second, {args.messages} messages per case, median of "
              f"{args.runs} runs [min-max]; 587 with STARTTLS, AUTH before the clock; "
              f"postern workers {args.postern_workers}; load {os.getloadavg()[0]:.1f}")
        for size in sizes:
            for clients in client_counts:
                got = {postern.name: [], postfix.name: []}
                for run in range(args.runs):
                    order = (postern, postfix) if run % 2 == 0 else (postfix, postern)
                    for server in order:
                        got[server.name].append(run_case(server, users[:clients],
                                                         args.messages, size))
                line = f"  {size // 1024:4d} KiB, {clients:2d} client(s):"
                med = {}
                for name, results in got.items():
                    sub = [r[0] for r in results]
                    dlv = [r[1] for r in results]
                    med[name] = (statistics.median(sub), statistics.median(dlv))
                    line += (f"  {name} submitted {med[name][0]:6.1f} [{min(sub):.1f}-"
                             f"{max(sub):.1f}] delivered {med[name][1]:6.1f} "
                             f"[{min(dlv):.1f}-{max(dlv):.1f}]")
                p, r = med[postern.name], med[postfix.name]
                line += f"  ratio submitted {p[0] / r[0]:.2f} delivered {p[1] / r[1]:.2f}"
                print(line, flush=True)
    finally:
        postern.stop()
        if postfix:
            postfix.stop()
        if dovecot:
            dovecot.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
