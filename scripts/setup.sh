#!/usr/bin/env bash
# Install what postern needs to build and test, if it is missing, and build.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   scripts/setup.sh            build ./build
#   scripts/setup.sh --asan     also build ./build-asan (AddressSanitizer + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc libc6-dev pkg-config meson ninja-build libssl-dev libevent-dev
	libsqlite3-dev zlib1g-dev libcrypt-dev libidn-dev libcmocka-dev openssl sqlite3
	python3 python3-pytest clang libclang-rt-dev curl fetchmail swaks libnet-ssleay-perl isync libsasl2-modules msmtp gsasl
	python3-lxml chromium chromium-driver python3-selenium)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "postern: installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# when run as root, posternd's roles switch to these unprivileged users
if [ "$(id -u)" -eq 0 ]; then
	for u in postern-auth postern-front postern-mail; do
		id "$u" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$u"
	done
fi

build() {
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}
build build
if [ "${1:-}" = "--asan" ]; then
	build build-asan -Db_sanitize=address,undefined -Db_lundef=false
fi
