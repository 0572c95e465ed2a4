#!/bin/sh
# Build the libFuzzer targets and run each for a bounded time.
#
#   fuzz/build.sh [SECONDS] [TARGET...]
#
# SECONDS defaults to 60 per target; TARGET is any of proxy_header,
# line_reader, frontend, smtp, imap, mime, scram (default: all of them). Seeds in
# fuzz/corpus/<target>/ are read, never written; inputs found while fuzzing
# go to $FUZZ_OUT/corpus-<target> (default fuzz/out/, ignored by git),
# crashes to $FUZZ_OUT/.
# Exits non-zero when a target crashes or an invariant check aborts.
set -eu

secs=${1:-60}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
out=${FUZZ_OUT:-$root/fuzz/out}
cc=${CC:-clang}
targets=${*:-proxy_header line_reader frontend smtp imap mime http scram}
cflags="-std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined"
cflags="$cflags -fno-sanitize-recover=undefined -I$root/src"

mkdir -p "$out"
for t in $targets; do
	case $t in
	proxy_header) srcs="src/net/proxy_header.c" ;;
	line_reader) srcs="src/net/line_reader.c src/lib/xalloc.c src/lib/log.c" ;;
	smtp) srcs="src/proto/smtp/smtp_server.c src/proto/smtp/smtp_address.c src/lib/xalloc.c src/lib/log.c
		src/lib/metrics.c -levent" ;;
	frontend) srcs="src/frontend/frontend.c src/frontend/frontend_relay.c
		src/frontend/frontend_sasl.c src/frontend/frontend_pop3.c
		src/frontend/frontend_imap.c src/net/conn.c src/net/conn_deflate.c src/net/tls.c
		src/net/line_reader.c $(cd "$root" && ls src/proto/imap/*.c | grep -v _test.c | tr '\n' ' ')
		src/net/proxy_header.c src/net/cidr.c src/net/conn_limits.c src/net/net.c
		src/net/test_cert.c src/lib/log.c src/lib/xalloc.c src/lib/net_addr.c
		src/lib/ipc.c src/lib/protolog.c src/lib/metrics.c src/lib/scram.c src/lib/base64.c
		-levent -levent_openssl -lssl -lcrypto -lz" ;;
	scram) srcs="src/lib/scram.c src/lib/base64.c src/authd/authd_scram.c src/lib/xalloc.c
		src/lib/log.c -lcrypto" ;;
	mime) srcs="src/mail/mime_parser.c src/mail/mail_header.c src/mail/mail_decode.c
		src/mail/mail_address.c src/mail/mail_imap.c src/lib/xalloc.c src/lib/log.c" ;;
	http) srcs="src/http/http_request.c src/lib/xalloc.c src/lib/log.c" ;;
	imap) srcs="$(cd "$root" && ls src/proto/imap/*.c | grep -v _test.c | tr '\n' ' ')
		src/net/line_reader.c src/lib/xalloc.c src/lib/log.c" ;;
	*) echo "unknown fuzz target: $t (proxy_header, line_reader, frontend, smtp, imap, mime, http, scram)" >&2; exit 2 ;;
	esac
	bin="$out/${t}_fuzz"
	echo "== building $bin"
	(cd "$root" && $cc $cflags "fuzz/${t}_fuzz.c" $srcs -o "$bin")
	mkdir -p "$out/corpus-$t"
	echo "== running $t for ${secs}s"
	"$bin" -max_total_time="$secs" -print_final_stats=1 \
		-dict="$root/fuzz/$t.dict" -artifact_prefix="$out/${t}-" \
		"$out/corpus-$t" "$root/fuzz/corpus/$t"
done
