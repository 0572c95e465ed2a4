"""posternd and `posternctl service`: services start, stop and restart on
their own, dead workers come back, binding changes are served live, and bad
data dirs get clear errors."""

import os
import signal
import socket
import subprocess
import time

from conftest import POSTERND, connectable, wait_until


def greeting(port, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")


def test_new_instance_has_pop3_and_imap4_manual_and_stopped(running):
    r = running.ctl("service", "list")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    for name in ("pop3", "pop3-backend", "imap4", "imap4-backend"):
        assert rows[name][1] == "manual", r.stdout
        assert rows[name][2] == "stopped", r.stdout
    assert not connectable(running.port("pop3"))
    assert not connectable(running.port("imap4"))


def test_status_exits_nonzero_for_a_stopped_service(running):
    code, status = running.status("pop3")
    assert code != 0
    assert status["pop3"]["state"] == "stopped"


def test_start_stop_restart_change_the_running_master(running):
    r = running.ctl("service", "start", "pop3")
    assert r.returncode == 0, r.stderr
    code, status = running.status("pop3")
    assert code == 0, status
    assert status["pop3"]["state"] == "running"
    pid = int(status["pop3"]["pids"])
    assert greeting(running.port("pop3")).startswith("+OK")

    r = running.ctl("service", "restart", "pop3")
    assert r.returncode == 0, r.stderr
    code, status = running.status("pop3")
    assert code == 0 and status["pop3"]["state"] == "running"
    assert int(status["pop3"]["pids"]) != pid
    assert greeting(running.port("pop3")).startswith("+OK")

    r = running.ctl("service", "stop", "pop3")
    assert r.returncode == 0, r.stderr
    code, status = running.status("pop3")
    assert code != 0 and status["pop3"]["state"] == "stopped"
    assert not connectable(running.port("pop3"))
    # the worker process is gone
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=5)


def test_services_are_independent(running):
    running.ctl("service", "start", "pop3", "imap4", check=True)
    running.ctl("service", "stop", "imap4", check=True)
    assert greeting(running.port("pop3")).startswith("+OK")
    assert not connectable(running.port("imap4"))
    code, _ = running.status("pop3", "imap4")
    assert code != 0  # imap4 is named and not running


def test_killed_worker_is_back_within_two_seconds(running):
    running.ctl("service", "start", "imap4", check=True)
    _, status = running.status("imap4")
    pid = int(status["imap4"]["pids"])
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def replaced():
        _, st = running.status("imap4")
        pids = st.get("imap4", {}).get("pids", "-")
        return pids not in ("-", str(pid)) and st["imap4"]["state"] == "running"

    assert wait_until(replaced, timeout=2.0, interval=0.02)
    assert time.monotonic() - killed < 2.0
    assert greeting(running.port("imap4")).startswith("* OK")
    _, status = running.status("imap4")
    assert status["imap4"]["restarts"] == "1"
    assert "killed by signal 9" in running.read_log()


def test_startup_type_persists_and_disabled_cannot_start(running):
    r = running.ctl("service", "set", "pop3", "startup=disabled")
    assert r.returncode == 0, r.stderr
    r = running.ctl("service", "start", "pop3")
    assert r.returncode != 0
    assert "disabled" in r.stderr
    r = running.ctl("service", "set", "pop3", "startup=automatic")
    assert r.returncode == 0, r.stderr
    r = running.ctl("service", "set", "pop3", "startup=sometimes")
    assert r.returncode != 0 and "startup" in r.stderr
    # automatic services start with posternd
    running.stop()
    running.kill_all()
    running.start()
    code, status = running.status("pop3")
    assert code == 0 and status["pop3"]["state"] == "running"
    assert greeting(running.port("pop3")).startswith("+OK")


def test_binding_change_is_served_without_restarting_posternd(running):
    running.ctl("service", "start", "pop3", check=True)
    old_port = running.port("pop3")
    new_port = old_port + 7
    master_pid = running.proc.pid
    _, status = running.status("pop3")
    worker_pid = status["pop3"]["pids"]
    r = running.ctl("settings", "set", "pop3",
                    f"unencrypted-or-tls-bindings=127.0.0.1:{new_port}")
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: connectable(new_port), timeout=5)
    assert greeting(new_port).startswith("+OK")
    assert wait_until(lambda: not connectable(old_port), timeout=5)
    # same master, same worker: nothing was restarted
    assert running.proc.poll() is None and running.proc.pid == master_pid
    _, status = running.status("pop3")
    assert status["pop3"]["pids"] == worker_pid
    assert f"127.0.0.1:{new_port}" in status["pop3"]["listeners"]


def test_banner_change_reaches_new_connections(running):
    running.ctl("service", "start", "pop3", check=True)
    running.ctl("settings", "set", "pop3", "banner=Welcome to the test post office",
                check=True)
    assert "Welcome to the test post office" in greeting(running.port("pop3"))


def test_unbindable_address_is_reported(running):
    running.ctl("service", "start", "pop3", check=True)
    # another program holds this port
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    try:
        r = running.ctl("settings", "set", "pop3",
                        f"unencrypted-or-tls-bindings=127.0.0.1:{taken}")
        assert r.returncode != 0
        assert f"127.0.0.1:{taken}" in r.stderr
        # the service keeps serving its TLS binding
        assert connectable(running.port("pop3", tls=True))
    finally:
        blocker.close()


def test_sigterm_stops_everything_cleanly(running):
    running.ctl("service", "start", "pop3", "imap4", check=True)
    _, status = running.status("pop3", "imap4")
    pids = [int(status[s]["pids"]) for s in ("pop3", "imap4")]
    # an open session gets a protocol goodbye
    s = socket.create_connection(("127.0.0.1", running.port("imap4")), timeout=5)
    s.recv(512)
    assert running.stop() == 0
    s.settimeout(5)
    rest = b""
    while True:
        chunk = s.recv(512)
        if not chunk:
            break
        rest += chunk
    s.close()
    assert b"* BYE" in rest
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")
    assert not (running.datadir / "control.sock").exists()


def test_second_master_on_the_same_instance_is_refused(running):
    r = subprocess.run([str(POSTERND), "-d", str(running.datadir)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0
    assert "already running" in r.stderr


def test_missing_data_dir_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere"
    r = subprocess.run([str(POSTERND), "-d", str(missing)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0
    assert str(missing) in r.stderr
    assert not missing.exists()


def test_data_dir_without_instance_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([str(POSTERND), "-d", str(empty)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0
    assert "settings.db" in r.stderr or "instance" in r.stderr
    assert list(empty.iterdir()) == []


def test_corrupt_settings_database_is_a_clear_error(instance):
    instance.init()
    db = instance.datadir / "settings.db"
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    r = subprocess.run([str(POSTERND), "-d", str(instance.datadir)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0
    assert "settings.db" in r.stderr
    assert db.read_bytes() == before
    assert not (instance.datadir / "control.sock").exists()


def test_worker_count_changes_live(running):
    running.ctl("service", "start", "pop3", check=True)
    r = running.ctl("settings", "set", "pop3", "workers=3")
    assert r.returncode == 0, r.stderr

    def pids():
        return [p for p in running.status("pop3")[1]["pop3"]["pids"].split(",") if p.isdigit()]

    assert wait_until(lambda: len(pids()) == 3, timeout=5)
    for _ in range(10):
        assert greeting(running.port("pop3")).startswith("+OK")
    # one of them dies: it alone is replaced
    victim = int(pids()[1])
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(pids()) == 3 and str(victim) not in pids(), timeout=3)
    running.ctl("settings", "set", "pop3", "workers=1", check=True)
    assert wait_until(lambda: len(pids()) == 1, timeout=10)
    assert greeting(running.port("pop3")).startswith("+OK")
    # and back up: the retired slots start again
    running.ctl("settings", "set", "pop3", "workers=2", check=True)
    assert wait_until(lambda: len(pids()) == 2, timeout=5)
    code, status = running.status("pop3")
    assert code == 0 and status["pop3"]["state"] == "running"


def test_lmtp_socket_access_for_an_mta(running):
    import grp
    import stat
    sock = running.datadir / "lmtp.sock"
    assert wait_until(sock.exists, timeout=5)
    # by default the submission service (postern-front) may deliver
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660
    if os.geteuid() == 0:
        assert st.st_gid == grp.getgrnam("postern-front").gr_gid
    group = "mail"
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        import pytest
        pytest.skip("no 'mail' group")
    r = running.ctl("settings", "set", "lmtp", "unix-socket-mode=0660",
                    f"unix-socket-group={group}")
    assert r.returncode == 0, r.stderr
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid
    r = running.ctl("settings", "set", "lmtp", "unix-socket-mode=0644")
    assert r.returncode != 0 and "unix-socket-mode" in r.stderr
    r = running.ctl("settings", "set", "lmtp", "unix-socket-group=no-such-group-here")
    assert r.returncode != 0 and "no-such-group-here" in r.stderr
