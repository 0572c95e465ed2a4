"""The mailbox store: the crash test (a child killed with SIGKILL during
deliveries and flag changes, over and over) and the `posternctl mailbox`
commands (list, import, export, quota, reindex) on a real instance."""

import mailbox
import re
import subprocess
import time

import pytest

from conftest import BUILD

CRASH_TEST = BUILD / "src" / "store" / "store_crash_test"

MBOX = (
    "From alice@example.com Tue Jul  1 10:52:37 2003\n"
    "From: Alice <alice@example.com>\n"
    "Subject: one\n"
    "\n"
    "first body\n"
    ">From the quoted line\n"
    "From inside a line is fine\n"
    "\n"
    "From bob@example.com Wed Jul  2 11:00:00 2003\n"
    "From: Bob <bob@example.com>\n"
    "Subject: two\n"
    "Content-Type: multipart/mixed; boundary=b\n"
    "\n"
    "--b\n"
    "\n"
    "part\n"
    "--b--\n"
    "\n"
    "From carol@example.com Thu Jul  3 12:00:00 2003\n"
    "Subject: three\n"
    "\n"
    "third\n"
)


def test_crash_rounds_lose_nothing(tmp_path):
    """50 rounds of SIGKILL at random points during appends, flag changes
    and expunges; every acknowledged append survives exactly once and no UID
    is reused (the program checks after each round)."""
    assert CRASH_TEST.exists(), f"build {CRASH_TEST} first"
    start = time.monotonic()
    r = subprocess.run([str(CRASH_TEST), "--rounds", "50", "--max-ms", "150",
                        "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) kills, (\d+) appends acknowledged", r.stdout)
    assert m and int(m.group(1)) == 50 and int(m.group(2)) > 0, r.stdout
    assert elapsed < 60


@pytest.fixture
def inst(instance):
    instance.init()
    instance.ctl("user", "add", "alice", "--quota", "10M", input="secret\n", check=True)
    return instance


def folders(inst, user="alice"):
    r = inst.ctl("mailbox", "list", user, check=True)
    rows = {}
    for line in r.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and not line.startswith("total"):
            rows[parts[0]] = (int(parts[2]), int(parts[3]))
    return rows, r.stdout


def test_list_new_user_has_special_folders(inst):
    rows, out = folders(inst)
    assert list(rows)[0] == "INBOX"
    for name in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert rows[name] == (0, 0), out
    assert "quota 10.0 MiB" in out


def test_unknown_user_and_usage(inst):
    r = inst.ctl("mailbox", "list", "nobody")
    assert r.returncode == 1 and "no user 'nobody'" in r.stderr
    assert inst.ctl("mailbox").returncode == 2
    assert inst.ctl("mailbox", "frobnicate", "alice").returncode == 2
    r = inst.ctl("mailbox", "import", "alice", "a/../b", "/dev/null")
    assert r.returncode == 1 and "'..'" in r.stderr


def test_import_export_mbox_round_trip(inst, tmp_path):
    src = tmp_path / "in.mbox"
    src.write_text(MBOX)
    r = inst.ctl("mailbox", "import", "alice", "Old/2003", str(src), check=True)
    assert "imported 3 messages" in r.stdout
    rows, out = folders(inst)
    assert rows["Old/2003"] == (3, 3), out
    assert "Old" in rows

    # the store keeps CRLF line ends and the exact bytes
    store = inst.datadir / "mail" / "alice" / ".Old.2003" / "cur"
    files = sorted(store.iterdir())
    assert len(files) == 3
    first = files[0].read_bytes()
    assert first.startswith(b"From: Alice <alice@example.com>\r\n")
    assert b"\r\nFrom the quoted line\r\n" in first
    assert b"\n" not in first.replace(b"\r\n", b"")

    dst = tmp_path / "out.mbox"
    r = inst.ctl("mailbox", "export", "alice", "Old/2003", str(dst), check=True)
    assert "exported 3 messages" in r.stdout
    text = dst.read_text()
    assert text.count("\nFrom MAILER-DAEMON ") == 2 and text.startswith("From MAILER-DAEMON ")
    assert ">From the quoted line" in text and "\nFrom inside" not in text.replace(">From inside", "")
    assert "From MAILER-DAEMON Tue Jul  1 10:52:37 2003" in text
    box = mailbox.mbox(str(dst))
    subjects = [m["Subject"] for m in box]
    assert subjects == ["one", "two", "three"]
    box.close()

    # export then import again gives the same messages
    r = inst.ctl("mailbox", "import", "alice", "Again", str(dst), check=True)
    assert "imported 3 messages" in r.stdout
    again = sorted((inst.datadir / "mail" / "alice" / ".Again" / "cur").iterdir())
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in files]


def test_import_maildir_keeps_flags(inst, tmp_path):
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / "1000.a.host:2,S").write_bytes(b"Subject: seen\n\nx\n")
    (md / "cur" / "1001.b.host:2,FR").write_bytes(b"Subject: flagged\r\n\r\ny\r\n")
    (md / "new" / "1002.c.host").write_bytes(b"Subject: new\n\nz\n")
    r = inst.ctl("mailbox", "import", "alice", "INBOX", str(md), check=True)
    assert "imported 3 messages" in r.stdout
    rows, out = folders(inst)
    assert rows["INBOX"] == (3, 2), out
    names = sorted(p.name for p in (inst.datadir / "mail" / "alice" / "cur").iterdir())
    assert any(n.endswith(":2,S") for n in names)
    assert any(n.endswith(":2,FR") for n in names)


def test_quota_recalculate_and_reindex(inst, tmp_path):
    src = tmp_path / "in.mbox"
    src.write_text(MBOX)
    inst.ctl("mailbox", "import", "alice", "INBOX", str(src), check=True)
    cur = inst.datadir / "mail" / "alice" / "cur"
    total = sum(p.stat().st_size for p in cur.iterdir())
    r = inst.ctl("mailbox", "quota", "alice", check=True)
    assert f"used {total} of 10485760 bytes" in r.stdout

    # another program removes a file and drops one in: reindex follows the files
    victim = sorted(cur.iterdir())[0]
    gone = victim.stat().st_size
    victim.unlink()
    (inst.datadir / "mail" / "alice" / "new" / "77.x.host").write_bytes(b"Subject: dropped\r\n\r\n")
    r = inst.ctl("mailbox", "reindex", "alice", check=True)
    assert "reindexed 3 messages" in r.stdout
    r = inst.ctl("mailbox", "quota", "alice", "--recalculate", check=True)
    assert f"used {total - gone + 20} of" in r.stdout
    rows, out = folders(inst)
    assert rows["INBOX"][0] == 3, out


def test_import_over_quota_stops_cleanly(instance, tmp_path):
    instance.init()
    instance.ctl("user", "add", "bob", "--quota", "1K", input="pw\n", check=True)
    src = tmp_path / "big.mbox"
    body = "x" * 400 + "\n"
    src.write_text("".join(f"From a@b Tue Jul  1 10:52:37 2003\nSubject: {i}\n\n{body}\n"
                           for i in range(5)))
    r = instance.ctl("mailbox", "import", "bob", "INBOX", str(src))
    assert r.returncode == 1 and "over quota" in r.stderr
    assert "imported 2 messages" in r.stdout
    tmp = instance.datadir / "mail" / "bob" / "tmp"
    assert list(tmp.iterdir()) == []
