#!/usr/bin/python3
"""POP3 benchmark: postern (through its front end, with the back-end hop)
against Dovecot's pop3 on the same machine, in the same run, with the same
mail, the same password hash and the same client.

  bench/pop3_bench.py [--messages N] [--logins N] [--concurrency N]

Both servers run as private instances on loopback in a temporary folder.
Reports, for each server: one session that LISTs and RETRs every message
(messages per second), and N logins from C concurrent clients over TLS
(logins per second), and the ratio postern/Dovecot. Needs posternd built
(scripts/setup.sh) and Dovecot (apt-get install dovecot-pop3d dovecot-lmtpd).
"""

import argparse
import concurrent.futures
import os
import poplib
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / os.environ.get("POSTERN_BUILD", "build")
POSTERNCTL = BUILD / "src/admin/posternctl"
POSTERND = BUILD / "src/master/posternd"
PASSWORD = "Bench-pw-1"


def free_port_block(count):
    for base in range(21000, 60000, 97):
        ok = True
        for p in range(base, base + count):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports")


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_message(n):
    body = (f"line {n} of a message body with some ordinary text in it\r\n" * 60).encode()
    return (f"From: sender{n}@example.org\r\nTo: alice@example.test\r\n"
            f"Subject: benchmark message {n}\r\nMessage-ID: <bench{n}@example.org>\r\n"
            f"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n").encode() + body


def deliver_all(lmtp_path, count):
    with smtplib.LMTP(lmtp_path, timeout=60) as lmtp:
        for n in range(count):
            refused = lmtp.sendmail("sender@example.org", ["alice@example.test"],
                                    make_message(n))
            assert not refused, refused


def session_rate(port, count):
    p = poplib.POP3_SSL("127.0.0.1", port, context=tls_context(), timeout=60)
    p.user("alice")
    p.pass_(PASSWORD)
    start = time.perf_counter()
    listing = p.list()[1]
    assert len(listing) == count, (len(listing), count)
    total = 0
    for i in range(1, count + 1):
        total += len(b"\r\n".join(p.retr(i)[1]))
    elapsed = time.perf_counter() - start
    p.quit()
    return count / elapsed, total


def noop_rate(port, count=2000):
    p = poplib.POP3_SSL("127.0.0.1", port, context=tls_context(), timeout=60)
    p.user("alice")
    p.pass_(PASSWORD)
    start = time.perf_counter()
    for _ in range(count):
        p.noop()
    elapsed = time.perf_counter() - start
    p.quit()
    return count / elapsed


def one_login(port):
    p = poplib.POP3_SSL("127.0.0.1", port, context=tls_context(), timeout=120)
    p.user("alice")
    p.pass_(PASSWORD)
    p.stat()
    p.quit()


def login_rate(port, logins, concurrency):
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: one_login(port), range(logins)))
    return logins / (time.perf_counter() - start)


class Postern:
    def __init__(self, top):
        self.dir = top / "postern"
        self.proc = None

    def start(self):
        offset = free_port_block(1) - 100  # any block; ports are checked by init's caller
        for _ in range(50):
            ports = [offset + p for p in (110, 995, 1110, 1995, 143, 993, 1143, 1993, 465, 587,
                                          8080, 8443)]
            if all(self._free(p) for p in ports):
                break
            offset += 1000
        self.offset = offset
        subprocess.run([POSTERNCTL, "-d", self.dir, "init", "--domain", "example.test",
                        "--hostname", "localhost", "--bind", "127.0.0.1", "--port-offset",
                        str(offset)], check=True, capture_output=True)
        subprocess.run([POSTERNCTL, "-d", self.dir, "user", "add", "alice"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        # every benchmark login is alice's: lift the per-user limit on both servers
        subprocess.run([POSTERNCTL, "-d", self.dir, "settings", "set", "pop3",
                        "max-connections-per-user=unlimited"], check=True, capture_output=True)
        self.log = open(self.dir.parent / "postern.log", "wb")
        self.proc = subprocess.Popen([POSTERND, "-d", self.dir], stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        for _ in range(100):
            if (self.dir / "control.sock").exists():
                break
            time.sleep(0.05)
        subprocess.run([POSTERNCTL, "-d", self.dir, "service", "start", "pop3-backend",
                        "pop3"], check=True, capture_output=True)
        wait_port(self.port)

    @staticmethod
    def _free(port):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    @property
    def port(self):
        return self.offset + 995

    @property
    def lmtp(self):
        return str(self.dir / "lmtp.sock")

    def password_hash(self):
        db = sqlite3.connect(f"file:{self.dir / 'directory.db'}?mode=ro", uri=True)
        (h,) = db.execute("SELECT password_hash FROM users WHERE name = 'alice'").fetchone()
        db.close()
        return h

    def rss_kb(self):
        total = 0
        for pid in [self.proc.pid] + children(self.proc.pid):
            total += rss(pid)
        return total

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class Dovecot:
    def __init__(self, top, cert, key, password_hash):
        self.dir = top / "dovecot"
        self.cert, self.key, self.hash = cert, key, password_hash
        self.proc = None

    def start(self):
        d = self.dir
        for sub in ("run", "state", "home"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        base = free_port_block(2)
        self.port = base + 1
        (d / "passwd").write_text(f"alice:{{CRYPT}}{self.hash}::::::\n")
        user = "postern-mail" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        os.chmod(d, 0o755)
        if os.geteuid() == 0:
            shutil.chown(d / "home", user, user)
        (d / "dovecot.conf").write_text(f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = pop3 lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{self.key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_username_format = %Ln
first_valid_uid = 1
mail_location = maildir:~/Maildir
pop3_uidl_format = %g
protocol pop3 {{
  mail_max_userip_connections = 100000
}}
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {d}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={user} home={d}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {base}
  }}
  inet_listener pop3s {{
    port = {self.port}
    ssl = yes
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
        wait_port(self.port)

    @property
    def lmtp(self):
        return str(self.dir / "run" / "lmtp")

    def rss_kb(self):
        return sum(rss(pid) for pid in [self.proc.pid] + children(self.proc.pid))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry))
                out.extend(children(int(entry)))
    return out


def rss(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--logins", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    args = ap.parse_args()
    if shutil.which("dovecot") is None:
        sys.exit("Dovecot is not installed: apt-get install dovecot-pop3d dovecot-lmtpd")
    top = Path(tempfile.mkdtemp(prefix="postern-bench-"))
    os.chmod(top, 0o755)
    postern = Postern(top)
    dovecot = None
    try:
        postern.start()
        dovecot = Dovecot(top, postern.dir / "tls/server.crt", postern.dir / "tls/server.key",
                          postern.password_hash())
        dovecot.start()
        results = {}
        for name, server in (("postern", postern), ("dovecot", dovecot)):
            t0 = time.perf_counter()
            deliver_all(server.lmtp, args.messages)
            deliver_rate = args.messages / (time.perf_counter() - t0)
            msg_rate, octets = session_rate(server.port, args.messages)
            # the first session also took in the new deliveries: measure again
            msg_rate, octets = session_rate(server.port, args.messages)
            cmd_rate = noop_rate(server.port)
            log_rate = login_rate(server.port, args.logins, args.concurrency)
            results[name] = (deliver_rate, msg_rate, cmd_rate, log_rate, server.rss_kb())
            print(f"{name:8s} deliveries/s {deliver_rate:7.0f}  RETR/s {msg_rate:7.0f}  "
                  f"NOOP/s {cmd_rate:7.0f}  logins/s {log_rate:6.1f}  "
                  f"RSS {results[name][4] / 1024:6.1f} MiB", flush=True)
        p, d = results["postern"], results["dovecot"]
        print(f"ratio postern/dovecot: deliveries {p[0] / d[0]:.2f}  RETR {p[1] / d[1]:.2f}  "
              f"NOOP {p[2] / d[2]:.2f}  logins {p[3] / d[3]:.2f}  memory {p[4] / d[4]:.2f}")
    finally:
        postern.stop()
        if dovecot:
            dovecot.stop()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
