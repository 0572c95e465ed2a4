#!/usr/bin/env bash
# Quick start: install what is missing, build, create a demo instance in
# ./demo-data (SQLite directory, self-signed certificate, loopback ports
# 10000 above the standard ones, a demo user and an admin) and run posternd in the
# foreground. Ctrl-C stops it; run again to reuse the same instance.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
datadir=${POSTERN_DEMO_DIR:-demo-data}
ctl() { build/src/admin/posternctl -d "$datadir" "$@"; }
if [ ! -f "$datadir/directory.db" ]; then
	ctl init --domain example.test --hostname localhost --bind 127.0.0.1 --port-offset 10000 \
		--demo-user demo | tee "$datadir.credentials"
	# a first message, so a mail client has something to show
	welcome=$(mktemp)
	cat > "$welcome" <<WELCOME
From postern@example.test $(LC_ALL=C date -u '+%a %b %e %H:%M:%S %Y')
From: postern <postern@example.test>
To: demo@example.test
Subject: Welcome to postern
Date: $(LC_ALL=C date -R)
Message-ID: <welcome.$(date +%s)@example.test>

This mailbox is served by the postern demo instance in $datadir.
WELCOME
	ctl mailbox import demo INBOX "$welcome" >/dev/null
	rm -f "$welcome"
	# an administrator for the admin centre
	admin_password=$(openssl rand -base64 12 | tr -d '/+=')
	printf '%s\n' "$admin_password" | ctl user add admin --kind admin >/dev/null
	echo "admin user: admin  password: $admin_password" >> "$datadir.credentials"
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
  Web     https://127.0.0.1:18443/      users' mail settings (sign in as demo)
          https://127.0.0.1:18443/admin the admin centre (sign in as admin)
  The certificate is self-signed: tell your client to trust it, e.g.
    openssl s_client -connect 127.0.0.1:10995 -quiet
    curl -k pop3s://127.0.0.1:10995/ -u demo:PASSWORD
  Administer it from another terminal:
    build/src/admin/posternctl -d $datadir service list

MSG
exec build/src/master/posternd -d "$datadir"
