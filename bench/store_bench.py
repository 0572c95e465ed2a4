#!/usr/bin/python3
"""Store benchmark: postern's lmtp service and mailbox store against Dovecot's
LMTP and index on the same machine, in the same run.

  bench/store_bench.py [--deliveries N] [--folder-messages N]

1. Deliveries per second over LMTP: 1 and 16 parallel clients (each its own
   user), 4 KiB and 100 KiB messages.
2. Time to take in a folder of N messages dropped into the Maildir (postern
   indexes them, ENVELOPE/BODYSTRUCTURE and full text included; Dovecot
   builds its index), then SEARCH TEXT over the folder: postern with its
   full-text index and by scanning, Dovecot (no FTS plugin) by scanning.
Needs posternd built and Dovecot (apt-get install dovecot-lmtpd
dovecot-pop3d). Prints each figure and the postern/Dovecot ratio.
"""

import argparse
import concurrent.futures
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pop3_bench as common  # noqa: E402

PASSWORD = common.PASSWORD


def body_of(size, n):
    line = b"benchmark text line with words such as mailbox, index and delivery\r\n"
    head = (f"From: sender{n}@example.org\r\nTo: user@example.test\r\n"
            f"Subject: store benchmark {n}\r\nMessage-ID: <store{n}.{size}@example.org>\r\n"
            f"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n").encode()
    return head + line * max(1, (size - len(head)) // len(line))


def deliver_rate(lmtp_path, users, total, size):
    per = max(1, total // len(users))

    def client(user):
        with smtplib.LMTP(lmtp_path, timeout=120) as l:
            for n in range(per):
                refused = l.sendmail("sender@example.org", [f"{user}@example.test"],
                                     body_of(size, n))
                assert not refused, refused

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(client, users))
    return per * len(users) / (time.perf_counter() - start)


def make_folder(cur, count):
    cur.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        text = body_of(2048, n)
        if n % 1000 == 7:
            text += b"the rare word zanzibarite appears here\r\n"
        (cur / f"{1700000000 + n}.M{n}P1.bench:2,").write_bytes(text)


def timed(cmd, **kw):
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stdout}{r.stderr}")
    return time.perf_counter() - start, r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deliveries", type=int, default=320)
    ap.add_argument("--folder-messages", type=int, default=100000)
    args = ap.parse_args()
    if shutil.which("dovecot") is None:
        sys.exit("Dovecot is not installed: apt-get install dovecot-lmtpd dovecot-pop3d")
    top = Path(tempfile.mkdtemp(prefix="postern-store-bench-"))
    os.chmod(top, 0o755)
    postern = common.Postern(top)
    dovecot = None
    users = [f"u{i}" for i in range(16)]
    try:
        postern.start()
        for u in users + ["bulk"]:
            subprocess.run([common.POSTERNCTL, "-d", postern.dir, "user", "add", u],
                           input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        dovecot = common.Dovecot(top, postern.dir / "tls/server.crt",
                                 postern.dir / "tls/server.key", postern.password_hash())
        dovecot.start()
        with open(dovecot.dir / "passwd", "a") as f:
            for u in users + ["bulk"]:
                f.write(f"{u}:{{CRYPT}}{postern.password_hash()}::::::\n")
        owner = "postern-mail" if os.geteuid() == 0 else None

        print("deliveries per second over LMTP")
        for size in (4096, 102400):
            for clients in (1, 16):
                rates = []
                for server in (postern, dovecot):
                    rates.append(deliver_rate(server.lmtp, users[:clients], args.deliveries,
                                              size))
                print(f"  {size // 1024:4d} KiB, {clients:2d} client(s): postern {rates[0]:7.1f}"
                      f"  dovecot {rates[1]:7.1f}  ratio {rates[0] / rates[1]:.2f}", flush=True)

        n = args.folder_messages
        print(f"a folder of {n} messages dropped into the Maildir")
        # postern's store for "bulk" exists once it has been opened
        subprocess.run([common.POSTERNCTL, "-d", postern.dir, "mailbox", "list", "bulk"],
                       check=True, capture_output=True)
        pcur = postern.dir / "mail" / "bulk" / "cur"
        dcur = dovecot.dir / "home" / "bulk" / "Maildir" / "cur"
        make_folder(pcur, n)
        make_folder(dcur, n)
        if owner:
            for d in (postern.dir / "mail" / "bulk", dovecot.dir / "home" / "bulk"):
                subprocess.run(["chown", "-R", f"{owner}:{owner}", str(d)], check=True)
        ctl = [common.POSTERNCTL, "-d", str(postern.dir), "mailbox"]
        doveadm = ["doveadm", "-c", str(dovecot.dir / "dovecot.conf")]
        p_index, _ = timed(ctl + ["search", "bulk", "INBOX", "zanzibarite"], timeout=3600)
        d_index, _ = timed(doveadm + ["mailbox", "status", "-u", "bulk", "messages", "INBOX"],
                           timeout=3600)
        print(f"  take in the folder: postern {p_index:6.1f} s (full index, with text)  "
              f"dovecot {d_index:6.1f} s (index only)  ratio {p_index / d_index:.2f}")
        p_fts, out = timed(ctl + ["search", "bulk", "INBOX", "zanzibarite"], timeout=3600)
        matches = out.strip().splitlines()[-1]
        p_scan, _ = timed(ctl + ["search", "bulk", "INBOX", "zanzibarite", "--scan"],
                          timeout=3600)
        d_scan, dout = timed(doveadm + ["search", "-u", "bulk", "mailbox", "INBOX", "text",
                                        "zanzibarite"], timeout=3600)
        print(f"  SEARCH TEXT: postern FTS {p_fts:6.2f} s, postern scan {p_scan:6.2f} s, "
              f"dovecot scan {d_scan:6.2f} s ({len(dout.splitlines())} hits; postern: "
              f"{matches})")
        print(f"  ratio FTS/dovecot {p_fts / d_scan:.3f}  scan/dovecot {p_scan / d_scan:.2f}")
    finally:
        postern.stop()
        if dovecot:
            dovecot.stop()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
