#!/usr/bin/env bash
# Install what is missing, build normally and with AddressSanitizer +
# UndefinedBehaviorSanitizer, and run every test (C unit tests and the
# black-box tests against a real posternd) under both builds, then the
# fuzzers for a bounded time. Prints "N passed, N failed" last.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --asan || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
count_meson() { # build dir
	local log=$1/meson-logs/testlog.json
	[ -f "$log" ] || return 0
	local ok bad
	ok=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["result"] in ("OK","EXPECTEDFAIL","SKIP")))' "$log")
	bad=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["result"] not in ("OK","EXPECTEDFAIL","SKIP")))' "$log")
	passed=$((passed + ok)); failed=$((failed + bad))
}
count_pytest() { # junit xml
	[ -f "$1" ] || { failed=$((failed + 1)); return 0; }
	local t f e s
	read -r t f e s < <(python3 -c 'import sys,xml.etree.ElementTree as E
r=E.parse(sys.argv[1]).getroot(); r=r if r.tag=="testsuite" else r[0]
print(r.get("tests"),r.get("failures"),r.get("errors"),r.get("skipped"))' "$1")
	passed=$((passed + t - f - e - s)); failed=$((failed + f + e))
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for b in build build-asan; do
	echo "== unit tests ($b)"
	meson test -C "$b" --suite unit --print-errorlogs -q || true
	count_meson "$b"
	echo "== black-box tests ($b)"
	POSTERN_BUILD="$b" timeout 2400 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		--junitxml="$b/blackbox.xml" tests/blackbox || true
	count_pytest "$b/blackbox.xml"
done

fuzz_ok() { # clang with libFuzzer's runtime
	command -v clang >/dev/null || return 1
	local probe
	probe=$(mktemp -d)
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}\n' \
		> "$probe/p.c"
	clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>/dev/null
	local r=$?
	rm -rf "$probe"
	return $r
}
if [ -x fuzz/build.sh ] && fuzz_ok; then
	echo "== fuzzers (bounded)"
	# the MIME parser faces every delivered message: it gets the longest run
	for run in "${POSTERN_FUZZ_SECONDS:-20} proxy_header line_reader frontend smtp imap http scram" \
		"${POSTERN_MIME_FUZZ_SECONDS:-60} mime"; do
		# shellcheck disable=SC2086
		if fuzz/build.sh $run; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
		fi
	done
else
	echo "== fuzzers skipped: clang with libFuzzer (libclang-rt) is not installed"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
