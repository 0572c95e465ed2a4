#!/usr/bin/python3
"""IMAP4 benchmark: postern (through its front end, with the back-end hop)
against Dovecot's imap on the same machine, in the same run, with the same
mail, the same password hash and the same load generator (bench/imap_load.c,
libevent + OpenSSL, built here with one cc line).

  bench/imap_bench.py [--runs R] [--clients C] [--duration S]
                      [--idle-connections N] [--idle-users U] [--skip-idle]

Both servers run as private instances on 127.0.0.1 in a temporary folder;
the same messages are dropped into both Maildirs and indexed by each before
anything is measured. Every IMAP session is implicit TLS (port 993's kind) on
both sides; postern's front end speaks plain IMAP to its back end on
loopback.

1. Mixed workload: C clients (two per user), no think time, SELECT, FETCH of
   flags, FETCH of a body, STORE, SEARCH, APPEND, UID EXPUNGE and IDLE drawn
   at random: commands per second, latency percentiles per command, and the
   servers' CPU time per command.
2. Idle connections: N connections over U users LOGIN, SELECT and IDLE;
   memory of all the server's processes (summed PSS and RSS, minus the
   figure of freshly restarted processes just before) divided by N; then
   the latency from an APPEND in another session, and from an LMTP
   delivery (both in the load generator), to the EXISTS at every idler of
   that user.
Each server is measured alone (the other one is up but idle). With --runs R
the figures are the median of R runs, with the spread. See bench/README.md. Needs posternd built
(scripts/setup.sh), a C compiler with libevent and OpenSSL headers, and
Dovecot 2.3 (apt-get install dovecot-imapd dovecot-lmtpd).
"""

import argparse
import concurrent.futures
import ctypes
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pop3_bench as common  # noqa: E402

BENCH = Path(__file__).resolve().parent
PASSWORD = common.PASSWORD
DOMAIN = "example.test"


def fail(msg):
    sys.exit(f"imap_bench: {msg}")


# ---- preconditions ----

def check_prerequisites():
    missing = []
    for f in (common.POSTERND, common.POSTERNCTL):
        if not Path(f).exists():
            missing.append(f"{f} (build postern: scripts/setup.sh)")
    if shutil.which("dovecot") is None:
        missing.append("dovecot (apt-get install dovecot-imapd dovecot-lmtpd)")
    for prog in ("imap", "imap-login", "imap-hibernate", "lmtp"):
        if not Path(f"/usr/lib/dovecot/{prog}").exists():
            pkg = "dovecot-lmtpd" if prog == "lmtp" else "dovecot-imapd"
            missing.append(f"/usr/lib/dovecot/{prog} (apt-get install {pkg})")
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        missing.append(f"a C compiler ({cc}; apt-get install gcc)")
    if subprocess.run(["pkg-config", "--exists", "libevent", "libevent_openssl", "openssl"],
                      capture_output=True).returncode != 0:
        missing.append("libevent and OpenSSL headers (apt-get install libevent-dev libssl-dev "
                       "pkg-config)")
    if missing:
        fail("missing:\n  " + "\n  ".join(missing))


def build_load_generator(out):
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libevent", "libevent_openssl",
                            "openssl"], capture_output=True, text=True, check=True).stdout.split()
    cmd = [os.environ.get("CC", "cc"), "-O2", "-g", "-Wall", "-Wextra", "-Wno-unused-parameter",
           "-o", str(out), str(BENCH / "imap_load.c")] + flags + ["-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"building the load generator failed:\n{' '.join(cmd)}\n{r.stderr}")


def cheap_hash(password):
    """SHA-512-crypt at 1000 rounds (the minimum), for both servers: the
    benchmark measures IMAP, not the password hash (postern's default,
    yescrypt, would make 10,000 logins take minutes on either server)."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    h = lib.crypt(password.encode(), b"$6$rounds=1000$imapbenchsalt$")
    if not h or not h.startswith(b"$6$"):
        fail("libcrypt could not make a SHA-512-crypt hash")
    return h.decode()


def raise_fd_limit(want):
    """Raise RLIMIT_NOFILE (the hard limit too when allowed: root with
    CAP_SYS_RESOURCE); the servers and the load generator inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, min(want, nr_open)))
        except (ValueError, OSError):
            pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, want), hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class InotifyLimit:
    """Both servers' mail processes run as one user and inotify instances
    are counted per user (postern: one per open user store in each back-end
    worker; Dovecot: one per session in IDLE, kept by imap-hibernate). The
    default of 128 is shared with every other postern on the machine, so
    when it is lower than needed it is raised for the run (root only) and
    put back afterwards. It is a cap: raising it takes nothing from anyone."""
    PATH = Path("/proc/sys/fs/inotify/max_user_instances")

    def __init__(self, want):
        self.old = None
        self.want = want
        try:
            self.cur = int(self.PATH.read_text())
        except OSError:
            self.cur = None

    def __enter__(self):
        if self.cur is not None and self.cur < self.want:
            if os.geteuid() == 0:
                self.PATH.write_text(f"{self.want}\n")
                self.old = self.cur
                print(f"# fs.inotify.max_user_instances raised from {self.cur} to {self.want} "
                      f"for the run", flush=True)
            else:
                print(f"# fs.inotify.max_user_instances is {self.cur} (< {self.want}): IDLE "
                      f"may miss deliveries; run as root to raise it", flush=True)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            try:
                if int(self.PATH.read_text()) == self.want:
                    self.PATH.write_text(f"{self.old}\n")
            except OSError:
                pass


# ---- process trees and memory ----

def tree(pid):
    return [pid] + common.children(pid)


def stop_tree(proc, pids):
    """SIGTERM the server's master, then make sure that every process it had
    (pids, taken just before) is gone: Dovecot's children can outlive it."""
    starts = {}
    for pid in pids:
        try:
            starts[pid] = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
        except OSError:
            pass
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def alive():
        out = []
        for pid, start in starts.items():
            try:
                if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19] == start:
                    out.append(pid)
            except OSError:
                pass
        return out
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def mem_kb(pids):
    """Summed PSS and RSS (KiB) and the number of processes."""
    pss = rss = n = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
            n += 1
        except OSError:
            pass
    return pss, rss, n


def role(pid):
    """postern: the worker's service; Dovecot: the process name."""
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        comm = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return None
    if b"--worker" in argv:
        return argv[argv.index(b"--worker") + 1].decode()
    if b"--authd" in argv:
        return "authd"
    return comm


def pss_by_role(pids):
    out = {}
    for pid in pids:
        r = role(pid)
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    out[r] = out.get(r, 0) + int(line.split()[1])
        except OSError:
            pass
    return out


def cpu_s(pids):
    """utime+stime of the processes and of their reaped children (seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15])
    return total / tick


def top_cpu(seconds=2.0, n=6):
    """Processes that used the most CPU over the next few seconds."""
    def snap():
        out = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open(f"/proc/{entry}/stat").read()
                    comm = stat[stat.index("(") + 1:stat.rindex(")")]
                    f = stat.rsplit(")", 1)[1].split()
                    out[int(entry)] = (comm, int(f[11]) + int(f[12]))
                except (OSError, ValueError):
                    pass
        return out
    a = snap()
    time.sleep(seconds)
    b = snap()
    tick = os.sysconf("SC_CLK_TCK")
    busy = {}
    for pid, (comm, t) in b.items():
        d = t - a.get(pid, (comm, t))[1] if pid in a else 0
        busy[comm] = busy.get(comm, 0) + d
    total = sum(busy.values()) / tick / seconds
    tops = sorted(busy.items(), key=lambda kv: -kv[1])[:n]
    return total, [(c, t / tick / seconds) for c, t in tops if t > 0]


# ---- mail ----

def make_message(n):
    """Messages of 1.5 to 40 KB; every fifth a multipart with an attachment."""
    size = (1500, 3000, 6000, 12000, 40000)[n % 5]
    head = (f"From: Sender {n % 20} <sender{n % 20}@example.org>\r\n"
            f"To: user@{DOMAIN}\r\nSubject: benchmark message {n}\r\n"
            f"Message-ID: <imapbench{n}@example.org>\r\n"
            f"Date: Wed, 25 Nov 2026 12:{n % 60:02d}:00 +0000\r\nMIME-Version: 1.0\r\n")
    text = f"line of message {n} with some ordinary words in it, mailbox and index\r\n"
    if n % 5 != 4:
        body = text * max(1, (size - len(head)) // len(text))
        return (head + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body).encode()
    import base64
    blob = base64.encodebytes(bytes(range(256)) * (size // 2 // 256)).decode()
    blob = blob.replace("\n", "\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="b-{0}"\r\n\r\n'
            '--b-{0}\r\nContent-Type: text/plain\r\n\r\n{1}\r\n'
            '--b-{0}\r\nContent-Type: application/octet-stream\r\n'
            'Content-Transfer-Encoding: base64\r\n'
            'Content-Disposition: attachment; filename="data{0}.bin"\r\n\r\n{2}'
            '--b-{0}--\r\n').format(n, text * 20, blob).encode()


def fill_maildir(cur, count):
    """Drop count messages into a Maildir's cur/ (as bench/store_bench.py
    does); each server takes them in when the folder is next opened."""
    cur.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (cur / f"{1700000000 + n}.M{n}P1.imapbench:2,").write_bytes(make_message(n))


def fill_users(postern, dovecot, users, count):
    """The same messages go into both servers' Maildirs as files (LMTP
    would take minutes on this machine), then each server indexes them
    before anything is measured. The per-user tool runs go four at a time
    (thousands of users otherwise take most of an hour)."""
    owner = "postern-mail" if os.geteuid() == 0 else None

    def each(fn):
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            for _ in pool.map(fn, users):
                pass

    def create(u):
        subprocess.run([common.POSTERNCTL, "-d", postern.dir, "mailbox", "list", u],
                       check=True, capture_output=True)
        fill_maildir(postern.dir / "mail" / u / "cur", count)
        fill_maildir(dovecot.dir / "home" / u / "Maildir" / "cur", count)

    each(create)
    if owner:
        # once for every user (per user, each run took every user before it)
        for tree in (postern.dir / "mail", dovecot.dir / "home"):
            subprocess.run(["chown", "-R", f"{owner}:{owner}", str(tree)], check=True)
    t0 = time.monotonic()
    each(lambda u: subprocess.run([common.POSTERNCTL, "-d", postern.dir, "mailbox", "search", u,
                                   "INBOX", "zanzibarite"], check=True, capture_output=True,
                                  timeout=3600))
    if owner:
        subprocess.run(["chown", "-R", f"{owner}:{owner}", str(postern.dir / "mail")], check=True)
    t1 = time.monotonic()
    each(lambda u: subprocess.run(["doveadm", "-c", str(dovecot.dir / "dovecot.conf"), "mailbox",
                                   "status", "-u", u, "messages", "INBOX"], check=True,
                                  capture_output=True, timeout=3600))
    t2 = time.monotonic()
    print(f"# {len(users)} INBOXes of {count} messages dropped into the Maildirs; indexed "
          f"by postern in {t1 - t0:.1f} s, by Dovecot in {t2 - t1:.1f} s (4 at a time)",
          flush=True)


# ---- servers ----

class Postern(common.Postern):
    """postern with the imap4 front end and imap4-backend, limits lifted."""

    def __init__(self, top, frontend_workers, backend_workers=1, preload=None):
        super().__init__(top)
        self.frontend_workers = frontend_workers
        self.backend_workers = backend_workers
        self.preload = preload
        self.dovecot = None  # stopped with postern

    def start(self):
        offset = common.free_port_block(1) - 100
        for _ in range(50):
            ports = [offset + p for p in (110, 995, 1110, 1995, 143, 993, 1143, 1993, 465, 587,
                                          8080, 8443)]
            if all(self._free(p) for p in ports):
                break
            offset += 1000
        self.offset = offset
        ctl = [common.POSTERNCTL, "-d", self.dir]
        subprocess.run(ctl + ["init", "--domain", DOMAIN, "--hostname", "localhost", "--bind",
                              "127.0.0.1", "--port-offset", str(offset)],
                       check=True, capture_output=True)
        # every idle user holds many sessions: lift the per-user limit (default
        # 16); max-connections and max-connections-from-single-ip are unlimited
        # by default; the idle timeout after login is raised to its maximum
        for svc in ("imap4", "imap4-backend"):
            subprocess.run(ctl + ["settings", "set", svc, "max-connections-per-user=unlimited",
                                  "max-connections=unlimited",
                                  "authenticated-connection-timeout=3600"],
                           check=True, capture_output=True)
        subprocess.run(ctl + ["settings", "set", "imap4-backend",
                              f"workers={self.backend_workers}"],
                       check=True, capture_output=True)
        subprocess.run(ctl + ["settings", "set", "imap4",
                              "max-connections-from-single-ip=unlimited",
                              f"workers={self.frontend_workers}"],
                       check=True, capture_output=True)
        self.log = open(self.dir.parent / "postern.log", "wb")
        env = dict(os.environ)
        if self.preload:
            env["LD_PRELOAD"] = str(self.preload)
        self.proc = subprocess.Popen([common.POSTERND, "-d", self.dir], stdout=self.log,
                                     stderr=self.log, start_new_session=True, env=env)
        for _ in range(200):
            if (self.dir / "control.sock").exists():
                break
            time.sleep(0.05)
        subprocess.run(ctl + ["service", "start", "imap4-backend", "imap4"], check=True,
                       capture_output=True)
        common.wait_port(self.port)

    @property
    def port(self):
        return self.offset + 993

    def add_users(self, names, password_hash):
        for name in names:
            subprocess.run([common.POSTERNCTL, "-d", self.dir, "user", "add", name,
                            "--password-hash", password_hash], check=True, capture_output=True)

    def pids(self):
        return tree(self.proc.pid)

    def restart(self):
        """Fresh imap4 and imap4-backend workers: memory freed by the last
        phase is not given back to the system by every process."""
        subprocess.run([common.POSTERNCTL, "-d", self.dir, "service", "restart", "imap4-backend",
                        "imap4"], check=True, capture_output=True, timeout=60)
        common.wait_port(self.port)

    def stop(self):
        if self.proc:
            stop_tree(self.proc, self.pids())


class Dovecot(common.Dovecot):
    """Dovecot's imap and lmtp, configured for many connections: imap-login
    in its high-performance mode (service_count = 0, a few processes holding
    every TLS connection), an imap process per session (Dovecot's model), and
    IDLE sessions moved to imap-hibernate after imap_hibernate_timeout
    (--dovecot-hibernate 0 turns that off: then every idle session keeps its
    own imap process). An imap process serves up to --dovecot-imap-reuse
    sessions one after the other (service_count; Dovecot's default is 1, a
    fresh process per session)."""

    def __init__(self, top, cert, key, password_hash, users, max_conns, hibernate_s, reuse):
        super().__init__(top, cert, key, password_hash)
        self.reuse = reuse
        self.users = users
        self.max_conns = max_conns
        self.hibernate_s = hibernate_s

    def start(self):
        d = self.dir
        for sub in ("run", "state", "home"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        base = common.free_port_block(2)
        self.port = base + 1
        (d / "passwd").write_text("".join(f"{u}:{{CRYPT}}{self.hash}::::::\n"
                                          for u in self.users))
        user = "postern-mail" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        os.chmod(d, 0o755)
        if os.geteuid() == 0:
            shutil.chown(d / "home", user, user)
        big = self.max_conns + 2000
        hib = (f"imap_hibernate_timeout = {self.hibernate_s}s" if self.hibernate_s > 0
               else "imap_hibernate_timeout = 0")
        (d / "dovecot.conf").write_text(f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{self.key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_username_format = %Ln
first_valid_uid = 1
mail_location = maildir:~/Maildir
{hib}
default_client_limit = {big}
protocol imap {{
  mail_max_userip_connections = {big}
}}
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {d}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={user} home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {base}
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 2
  process_limit = 4
  client_limit = {big}
  vsz_limit = 4G
}}
service imap {{
  process_limit = {big}
  service_count = {self.reuse}
  idle_kill = 3 secs
  unix_listener imap-master {{
    mode = 0666
  }}
}}
service imap-hibernate {{
  client_limit = {big}
  unix_listener imap-hibernate {{
    mode = 0666
  }}
}}
service anvil {{
  client_limit = {2 * big}
}}
service auth {{
  client_limit = {2 * big}
}}
service stats {{
  client_limit = {big}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
""")
        self.spawn()

    def spawn(self):
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.dir / "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        common.wait_port(self.port)

    def restart(self):
        """A fresh set of processes (the mail stays): memory freed by the
        last phase is not given back to the system by every process."""
        self.stop()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.spawn()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise

    def pids(self):
        return tree(self.proc.pid)

    def stop(self):
        if self.proc:
            stop_tree(self.proc, self.pids())

    def process_count(self, name):
        n = 0
        for pid in self.pids():
            try:
                if open(f"/proc/{pid}/comm").read().strip() == name:
                    n += 1
            except OSError:
                pass
        return n


# ---- the load generator ----

def run_mixed(loadgen, server, args, users, seed):
    cmd = [str(loadgen), "mixed", "--port", str(server.port), "--password", PASSWORD,
           "--prefix", "w", "--users", str(len(users)), "--clients", str(args.clients),
           "--parallel", "16", "--warmup", str(args.warmup), "--duration", str(args.duration),
           "--idle-ms", "300", "--seed", str(seed),
           "--deadline", str(args.warmup + args.duration + 120)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    killer = threading.Timer(args.warmup + args.duration + 180, proc.kill)
    killer.start()
    cpu = {}
    res = None
    try:
        for line in proc.stdout:
            ev = json.loads(line)
            if ev.get("event") == "measure-start":
                cpu["start"] = cpu_s(server.pids())
            elif ev.get("event") == "measure-end":
                cpu["end"] = cpu_s(server.pids())
            elif ev.get("mode") == "mixed":
                res = ev
        proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or res is None or len(cpu) != 2:
        fail(f"mixed workload failed ({proc.returncode}):\n{''.join(err)}")
    res["stderr"] = "".join(err)
    # the servers' CPU time (user + system) over the measured window
    res["server_cpu_s"] = cpu["end"] - cpu["start"]
    return res


class IdleRun:
    def __init__(self, loadgen, server, args, lmtp):
        n = args.idle_connections
        self.cmd = [str(loadgen), "idle", "--port", str(server.port), "--password", PASSWORD,
                    "--prefix", "i", "--users", str(args.idle_users), "--connections", str(n),
                    "--parallel", str(args.parallel), "--probe-users",
                    str(min(args.probe_users, args.idle_users)), "--probe-timeout", "10",
                    "--lmtp", lmtp, "--domain", DOMAIN, "--deadline", str(args.idle_deadline)]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.err = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def event(self, timeout):
        """The next JSON line, or None at a timeout (the program is then killed)."""
        result = []

        def reader():
            result.append(self.proc.stdout.readline())
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if not result or not result[0]:
            self.kill()
            return None
        return json.loads(result[0])

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def quit(self):
        try:
            self.send("quit")
            self.proc.wait(30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_idle(loadgen, server, args):
    n = args.idle_connections
    server.restart()
    time.sleep(3)
    pss0, rss0, procs0 = mem_kb(server.pids())
    roles0 = pss_by_role(server.pids())
    t0 = time.monotonic()
    run = IdleRun(loadgen, server, args, server.lmtp)
    res = {"connections": n}
    try:
        ready = run.event(args.idle_deadline)
        if ready is None or ready.get("event") != "ready":
            fail(f"idle connections were not set up: {ready}\n{''.join(run.err[-20:])}")
        res["setup_s"] = time.monotonic() - t0
        res["idling"] = ready["idling"]
        res["setup_failures"] = ready["setup_failures"]
        res["login_p50_ms"] = ready["login"]["p50"]
        # let Dovecot hibernate the last sessions and end its unused imap
        # processes (idle_kill), then measure twice
        time.sleep(args.dovecot_hibernate + 6.0)
        samples = []
        for _ in range(2):
            samples.append(mem_kb(server.pids()))
            time.sleep(1)
        roles1 = pss_by_role(server.pids())
        pss1 = statistics.mean(s[0] for s in samples)
        rss1 = statistics.mean(s[1] for s in samples)
        idling = max(1, ready["idling"])
        res.update(pss_base_kb=pss0, rss_base_kb=rss0, pss_kb=pss1, rss_kb=rss1,
                   procs_base=procs0, procs=samples[-1][2],
                   pss_per_conn_kb=(pss1 - pss0) / idling, rss_per_conn_kb=(rss1 - rss0) / idling,
                   pss_per_conn_by_process_kb={
                       r: (roles1.get(r, 0) - roles0.get(r, 0)) / idling
                       for r in sorted(set(roles0) | set(roles1))
                       if abs(roles1.get(r, 0) - roles0.get(r, 0)) / idling >= 0.1})
        if isinstance(server, Dovecot):
            res["imap_processes"] = server.process_count("imap")
        for kind in ("append", "lmtp"):
            run.send(f"probe {kind} {args.probes}")
            ev = run.event(args.probes * 12 + 60)
            if ev is None:
                fail(f"probe {kind} did not finish\n{''.join(run.err[-20:])}")
            if ev.get("event") != "probe":
                # the load generator could not probe (its error says why)
                print(f"# {type(server).__name__}: probe {kind}: {json.dumps(ev)}\n"
                      f"#   {''.join(run.err[-5:]).strip()}", flush=True)
            res[f"probe_{kind}"] = ev
        run.send("status")
        st = run.event(30)
        res["idling_at_end"] = st["idling"] if st else None
    finally:
        run.quit()
    res["stderr"] = "".join(run.err)
    return res


# ---- reporting ----

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return ""
    return f"{min(values):.4g}–{max(values):.4g}"


def fmt(v, digits=1):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def print_notes(results, part):
    for srv in ("postern", "dovecot"):
        for k, r in enumerate(results):
            lines = r[srv][part].get("stderr", "").splitlines()
            for line in lines[:6]:
                print(f"  run {k + 1} {srv} load generator: {line[:160]}")
            if len(lines) > 6:
                print(f"  run {k + 1} {srv} load generator: ... {len(lines) - 6} more lines")


def table(rows, runs):
    """rows: (label, postern values, dovecot values, better) per metric."""
    multi = runs > 1
    head = f"{'':38s} {'postern':>10s} {'dovecot':>10s} {'p/d':>6s}"
    if multi:
        head += f"   spread postern | dovecot (over {runs} runs)"
    print(head)
    for label, pv, dv in rows:
        p, d = med(pv), med(dv)
        ratio = f"{p / d:6.2f}" if p is not None and d not in (None, 0) else "     —"
        line = f"{label:38s} {fmt(p):>10s} {fmt(d):>10s} {ratio}"
        if multi:
            line += f"   {spread(pv)} | {spread(dv)}"
        print(line)


def report(results, args):
    runs = len(results)
    def get(srv, f):
        # a figure with no sample (every notification missed) is None
        out = []
        for r in results:
            try:
                out.append(f(r[srv]))
            except (KeyError, TypeError):
                out.append(None)
        return out
    if not args.skip_mixed:
        report_mixed(results, args, runs, get)
    if not args.skip_idle:
        report_idle(results, args, runs, get)


def report_mixed(results, args, runs, get):
    print()
    print(f"== mixed workload: {args.clients} clients over {args.clients // 2} users, "
          f"{args.duration:.0f} s measured after {args.warmup:.0f} s, TLS, "
          f"{args.messages} messages per INBOX ==")
    rows = [("commands/s", get("postern", lambda r: r["mixed"]["cmd_per_s"]),
             get("dovecot", lambda r: r["mixed"]["cmd_per_s"])),
            ("server CPU ms per command",
             get("postern", lambda r: 1e3 * r["mixed"]["server_cpu_s"] /
                 max(1, r["mixed"]["commands"])),
             get("dovecot", lambda r: 1e3 * r["mixed"]["server_cpu_s"] /
                 max(1, r["mixed"]["commands"]))),
            ("server CPUs busy (of 2)", get("postern", lambda r: r["mixed"]["server_cpu_s"] /
                                        r["mixed"]["window_s"]),
             get("dovecot", lambda r: r["mixed"]["server_cpu_s"] / r["mixed"]["window_s"]))]
    for pc in ("p50", "p90", "p99"):
        rows.append((f"latency all commands {pc} ms", get("postern", lambda r: r["mixed"]["all"][pc]),
                     get("dovecot", lambda r: r["mixed"]["all"][pc])))
    for op in ("SELECT", "FETCH_FLAGS", "FETCH_BODY", "STORE", "SEARCH", "APPEND", "EXPUNGE",
               "IDLE"):
        for pc in ("p50", "p99"):
            rows.append((f"  {op} {pc} ms", get("postern", lambda r: r["mixed"]["ops"][op][pc]),
                         get("dovecot", lambda r: r["mixed"]["ops"][op][pc])))
    rows.append(("login p50 ms (setup)", get("postern", lambda r: r["mixed"]["login"]["p50"]),
                 get("dovecot", lambda r: r["mixed"]["login"]["p50"])))
    table(rows, runs)
    for srv in ("postern", "dovecot"):
        for r in results:
            m = r[srv]["mixed"]
            bad = {op: v["bad"] for op, v in m["ops"].items() if v["bad"]}
            no = {op: v["no"] for op, v in m["ops"].items() if v["no"]}
            if bad or m["disconnects"] or m["setup_failures"]:
                print(f"  ! {srv}: BAD {bad} NO {no} disconnects {m['disconnects']} "
                      f"setup failures {m['setup_failures']}")
            elif no or m["body_literals_missing"]:
                # a FETCH of a message the user's other session expunged just
                # before: NO, or OK without the body, are both allowed (RFC 2180)
                print(f"  {srv}: NO answers {no}, FETCH BODY answered OK without the body "
                      f"{m['body_literals_missing']} times")
    print_notes(results, "mixed")


def report_idle(results, args, runs, get):
    print()
    print(f"== idle connections: {args.idle_connections} IDLE sessions over {args.idle_users} "
          f"users, TLS; Dovecot imap_hibernate_timeout={args.dovecot_hibernate}s ==")
    rows = [("idling connections", get("postern", lambda r: r["idle"]["idling"]),
             get("dovecot", lambda r: r["idle"]["idling"])),
            ("time to set them up s", get("postern", lambda r: r["idle"]["setup_s"]),
             get("dovecot", lambda r: r["idle"]["setup_s"])),
            ("PSS per idle connection KiB", get("postern", lambda r: r["idle"]["pss_per_conn_kb"]),
             get("dovecot", lambda r: r["idle"]["pss_per_conn_kb"])),
            ("RSS per idle connection KiB", get("postern", lambda r: r["idle"]["rss_per_conn_kb"]),
             get("dovecot", lambda r: r["idle"]["rss_per_conn_kb"])),
            ("PSS of all processes, idle, MiB", get("postern", lambda r: r["idle"]["pss_kb"] / 1024),
             get("dovecot", lambda r: r["idle"]["pss_kb"] / 1024)),
            ("PSS before, MiB", get("postern", lambda r: r["idle"]["pss_base_kb"] / 1024),
             get("dovecot", lambda r: r["idle"]["pss_base_kb"] / 1024)),
            ("server processes (before -> idle)",
             get("postern", lambda r: r["idle"]["procs"]),
             get("dovecot", lambda r: r["idle"]["procs"]))]
    for kind, label in (("append", "APPEND"), ("lmtp", "LMTP delivery")):
        for part, pl in (("all", "every idler"), ("first", "first idler"),
                         ("last", "last idler")):
            for pc in ("p50", "p99") if part == "all" else ("p50",):
                rows.append((f"{label} -> EXISTS, {pl} {pc} ms",
                             get("postern", lambda r: r["idle"][f"probe_{kind}"][part][pc]),
                             get("dovecot", lambda r: r["idle"][f"probe_{kind}"][part][pc])))
        rows.append((f"{label} committed p50 ms",
                     get("postern", lambda r: r["idle"][f"probe_{kind}"]["commit"]["p50"]),
                     get("dovecot", lambda r: r["idle"][f"probe_{kind}"]["commit"]["p50"])))
    table(rows, runs)
    for srv in ("postern", "dovecot"):
        for r in results:
            i = r[srv]["idle"]
            missed = {k: i[f"probe_{k}"].get("missed", "no probe") for k in ("append", "lmtp")}
            if i["setup_failures"] or any(missed.values()) or \
                    i["idling_at_end"] != i["idling"]:
                print(f"  ! {srv}: setup failures {i['setup_failures']}, notifications missed "
                      f"{missed}, idling {i['idling']} -> {i['idling_at_end']} at the end")
            by = ", ".join(f"{k} {v:.1f}" for k, v in i["pss_per_conn_by_process_kb"].items())
            print(f"  {srv}: PSS per idle connection by process, KiB: {by}")
            if srv == "dovecot":
                print(f"  dovecot: imap processes while idle: {i.get('imap_processes')}")
    print_notes(results, "idle")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--clients", type=int, default=64, help="mixed workload clients")
    ap.add_argument("--messages", type=int, default=200, help="messages per workload INBOX")
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--idle-connections", type=int, default=10000)
    ap.add_argument("--idle-users", type=int, default=100)
    ap.add_argument("--idle-messages", type=int, default=10)
    ap.add_argument("--parallel", type=int, default=64,
                    help="idle connections being set up at once")
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--probe-users", type=int, default=20)
    ap.add_argument("--idle-deadline", type=float, default=400)
    ap.add_argument("--dovecot-hibernate", type=float, default=1,
                    help="Dovecot imap_hibernate_timeout in seconds, 0 for none")
    ap.add_argument("--dovecot-imap-reuse", type=int, default=1000,
                    help="Dovecot: sessions one imap process serves in turn (service_count)")
    ap.add_argument("--postern-frontend-workers", type=int, default=2,
                    help="imap4 front-end worker processes (one per core, like Dovecot's "
                         "imap-login processes; each holds two descriptors per connection)")
    ap.add_argument("--postern-backend-workers", type=int, default=1,
                    help="imap4-backend worker processes (sessions of one user share a store "
                         "only within one worker)")
    ap.add_argument("--postern-nodelay", action="store_true",
                    help="diagnostics: run posternd with bench/nodelay_shim.c preloaded "
                         "(TCP_NODELAY on every TCP socket; NODELAY_ONLY=WORD narrows it)")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--skip-mixed", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--json", help="write every figure to this file")
    args = ap.parse_args()
    check_prerequisites()
    # a SIGTERM (timeout(1), Ctrl-C's cousin) still stops the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("imap_bench: terminated"))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit("imap_bench: hung up"))

    fd_want = 2 * args.idle_connections + 4096
    fds, fd_hard = raise_fd_limit(fd_want)
    # the most loaded processes: the load generator (one descriptor per
    # connection), postern's front-end workers (two each: client and back
    # end), its back end (one each), Dovecot's imap-hibernate (one each)
    per_fe = 2 * args.idle_connections / args.postern_frontend_workers * 1.1
    if fds < max(args.idle_connections, per_fe) + 500:
        fail(f"RLIMIT_NOFILE is {fds} (hard limit {fd_hard}): too few for "
             f"{args.idle_connections} connections with {args.postern_frontend_workers} "
             f"postern front-end worker(s); lower --idle-connections, raise "
             f"--postern-frontend-workers, or raise the hard limit (root with "
             f"CAP_SYS_RESOURCE)")
    print(f"# RLIMIT_NOFILE {fds} (hard {fd_hard}; wanted {fd_want}), inherited by both "
          f"servers and the load generator")
    load0 = os.getloadavg()
    busy, tops = top_cpu()
    print(f"# machine: {os.cpu_count()} CPUs, load average {load0[0]:.2f} {load0[1]:.2f} "
          f"{load0[2]:.2f}; before the run {busy:.2f} CPUs busy: " +
          ", ".join(f"{c} {t:.2f}" for c, t in tops), flush=True)

    top = Path(tempfile.mkdtemp(prefix="postern-imap-bench-"))
    os.chmod(top, 0o755)
    loadgen = top / "imap_load"
    build_load_generator(loadgen)
    work_users = [f"w{i}" for i in range(max(1, args.clients // 2))]
    idle_users = [f"i{i}" for i in range(args.idle_users)]
    pw_hash = cheap_hash(PASSWORD)
    preload = None
    if args.postern_nodelay:
        preload = top / "nodelay_shim.so"
        subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-o", str(preload),
                        str(BENCH / "nodelay_shim.c"), "-ldl"], check=True)
        print("# diagnostics: posternd runs with TCP_NODELAY forced on by LD_PRELOAD" +
              (f" (only in '{os.environ['NODELAY_ONLY']}')" if os.environ.get("NODELAY_ONLY")
               else ""))
    postern = Postern(top, args.postern_frontend_workers, args.postern_backend_workers,
                      preload)
    # postern: an instance per user store per back-end worker; Dovecot: one per
    # imap process in IDLE, and imap-hibernate keeps the instance of every
    # session it holds (without one, Dovecot neither hibernates nor notifies)
    inotify = InotifyLimit(args.idle_connections + args.idle_users + args.clients + 2048)
    results = []
    with inotify:
        try:
            run_all(args, top, loadgen, postern, work_users, idle_users, pw_hash, results)
        finally:
            postern.stop()
            if postern.dovecot:
                postern.dovecot.stop()
            if args.keep:
                print(f"# kept {top}")
            else:
                for _ in range(3):
                    shutil.rmtree(top, ignore_errors=True)
                    if not top.exists():
                        break
                    time.sleep(1)


def run_all(args, top, loadgen, postern, work_users, idle_users, pw_hash, results):
    """Start both servers, fill them, run the phases, print the report."""
    postern.start()
    postern.add_users(work_users + idle_users, pw_hash)
    dovecot = Dovecot(top, postern.dir / "tls/server.crt", postern.dir / "tls/server.key",
                      pw_hash, work_users + idle_users, args.idle_connections,
                      args.dovecot_hibernate, args.dovecot_imap_reuse)
    postern.dovecot = dovecot
    dovecot.start()
    servers = {"postern": postern, "dovecot": dovecot}
    if not args.skip_mixed:
        fill_users(postern, dovecot, work_users, args.messages)
    if not args.skip_idle:
        fill_users(postern, dovecot, idle_users, args.idle_messages)
    for run in range(args.runs):
        order = ["postern", "dovecot"] if run % 2 == 0 else ["dovecot", "postern"]
        res = {name: {} for name in order}
        for name in order if not args.skip_mixed else []:
            m = run_mixed(loadgen, servers[name], args, work_users, seed=run + 1)
            res[name]["mixed"] = m
            print(f"# run {run + 1} {name}: mixed {m['cmd_per_s']:.0f} commands/s, "
                  f"p50 {m['all']['p50']:.1f} ms, p99 {m['all']['p99']:.1f} ms, "
                  f"server CPU {m['server_cpu_s']:.1f} s, load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
        if not args.skip_idle:
            for name in order:
                i = run_idle(loadgen, servers[name], args)
                res[name]["idle"] = i
                print(f"# run {run + 1} {name}: {i['idling']} idling in "
                      f"{i['setup_s']:.0f} s, PSS/conn {i['pss_per_conn_kb']:.1f} KiB, "
                      f"RSS/conn {i['rss_per_conn_kb']:.1f} KiB, APPEND->EXISTS p50 "
                      f"{i['probe_append'].get('all', {}).get('p50', 'none')} ms, "
                      f"LMTP->EXISTS p50 "
                      f"{i['probe_lmtp'].get('all', {}).get('p50', 'none')} ms, load "
                      f"{os.getloadavg()[0]:.2f}", flush=True)
        results.append(res)
    report(results, args)
    busy, tops = top_cpu()
    print(f"\n# after the run: load average {os.getloadavg()[0]:.2f}; {busy:.2f} CPUs "
          f"busy: " + ", ".join(f"{c} {t:.2f}" for c, t in tops))
    if args.json:
        for res in results:
            for srv in res.values():
                for part in srv.values():
                    part.pop("stderr", None)
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
