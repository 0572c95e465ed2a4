"""Black-box test harness: a real postern instance in a temporary folder,
posternd running on free loopback ports, driven with posternctl and
sockets. Every process started here is stopped at teardown."""

import os
import random
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("POSTERN_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
POSTERNCTL = BUILD / "src" / "admin" / "posternctl"
POSTERND = BUILD / "src" / "master" / "posternd"

# default ports of every service; an instance adds an offset to all of them
DEFAULT_PORTS = {
    "imap4": (993, 143), "imap4-backend": (1993, 1143),
    "pop3": (995, 110), "pop3-backend": (1995, 1110),
    "submission": (465, 587), "http": (8443, 8080),
}


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_offset():
    ports = [p for pair in DEFAULT_PORTS.values() for p in pair]
    for _ in range(200):
        offset = random.randrange(20000, 55000, 10)
        if all(port_free(p + offset) for p in ports):
            return offset
    raise RuntimeError("no free port range on 127.0.0.1")


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def tls_context():
    """A client context that accepts the instance's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def deliver(inst, rcpt, body, sender="sender@example.org"):
    """Deliver one message through the instance's lmtp socket; no retry."""
    with smtplib.LMTP(str(inst.datadir / "lmtp.sock"), timeout=30) as lmtp:
        refused = lmtp.sendmail(sender, [rcpt], body)
    assert refused == {}, refused


def connectable(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Instance:
    def __init__(self, datadir: Path):
        self.datadir = datadir
        self.offset = None
        self.proc = None
        self.log_path = datadir.parent / (datadir.name + ".log")
        self.log = None

    def ctl(self, *args, input=None, check=False, timeout=60):
        r = subprocess.run([str(POSTERNCTL), "-d", str(self.datadir), *args],
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"posternctl {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def init(self, domain="example.test", extra=()):
        self.offset = free_offset()
        return self.ctl("init", "--domain", domain, "--hostname", "mail.example.test",
                        "--bind", "127.0.0.1", "--port-offset", str(self.offset), *extra,
                        check=True)

    def port(self, service, tls=False):
        return DEFAULT_PORTS[service][0 if tls else 1] + self.offset

    def start(self):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        self.proc = subprocess.Popen([str(POSTERND), "-d", str(self.datadir)],
                                     stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)
        sock = self.datadir / "control.sock"
        ok = wait_until(lambda: sock.exists() and self.ctl("service", "list").returncode == 0,
                        timeout=15)
        if not ok:
            raise AssertionError("posternd did not come up:\n" + self.read_log())

    def read_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        return self.proc.returncode

    def kill_all(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)
        if self.log:
            self.log.close()

    def status(self, *services):
        """service name -> dict of its status fields (from `service status`)."""
        r = self.ctl("service", "status", *services)
        result = {}
        current = None
        for line in r.stdout.splitlines():
            if line and not line.startswith(" "):
                current = result.setdefault(line.strip(), {})
            elif current is not None and ":" in line:
                k, v = line.strip().split(":", 1)
                current[k.strip()] = v.strip()
        return r.returncode, result


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.fixture
def instance(tmp_path):
    if os.geteuid() == 0:
        # posternd's roles run as postern-* users: they must be able to
        # reach the data dir through pytest's private temp folders
        for p in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
            os.chmod(p, 0o755)
    inst = Instance(tmp_path / "data")
    yield inst
    inst.stop()
    inst.kill_all()
    # a sanitizer report from any process of the instance fails the test
    log = inst.read_log()
    found = [m for m in SANITIZER_MARKS if m in log]
    assert not found, f"sanitizer report in posternd's log:\n{log[-6000:]}"


@pytest.fixture
def running(instance):
    """An initialised instance with posternd running."""
    instance.init()
    instance.start()
    return instance
