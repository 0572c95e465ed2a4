#!/usr/bin/env bash
# Quick start: install what is missing, build, create a demo instance in
# ./demo-data (SQLite directory, self-signed certificate, loopback ports
# 10000 above the standard ones, a demo user) and run posternd in the
# foreground. Ctrl-C stops it; run again to reuse the same instance.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
datadir=${POSTERN_DEMO_DIR:-demo-data}
ctl() { build/src/admin/posternctl -d "$datadir" "$@"; }
if [ ! -f "$datadir/directory.db" ]; then
	ctl init --domain example.test --hostname localhost --bind 127.0.0.1 --port-offset 10000 \
		--demo-user demo | tee "$datadir.credentials"
	# POP3 and IMAP4 start on manual, as on a new server; the demo turns them on
	for s in imap4 imap4-backend pop3 pop3-backend; do
		ctl service set "$s" startup=automatic >/dev/null
	done
fi
cat <<MSG

postern demo instance in $datadir (credentials in $datadir.credentials)
  IMAP4   127.0.0.1:10143 (STARTTLS)   127.0.0.1:10993 (TLS)
  POP3    127.0.0.1:10110 (STLS)       127.0.0.1:10995 (TLS)
  SMTP    127.0.0.1:10587 (STARTTLS)   127.0.0.1:10465 (TLS)
  The certificate is self-signed: tell your client to trust it, e.g.
    openssl s_client -connect 127.0.0.1:10995 -quiet
    curl -k pop3s://127.0.0.1:10995/ -u demo:PASSWORD
  Administer it from another terminal:
    build/src/admin/posternctl -d $datadir service list

MSG
exec build/src/master/posternd -d "$datadir"
