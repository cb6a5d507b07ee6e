#!/bin/sh
# Installs what a fresh Debian or Ubuntu machine lacks to build, run and test
# Landlord: the PostgreSQL server binaries, and PgBouncer for the tests that
# run tenant traffic through a transaction pooler. Everything else comes from
# the Go module proxy. With --browser it also installs Chromium, which the
# shop's browser tests drive headless. It changes nothing when everything is
# already there.
set -eu

browser=false
case "${1:-}" in
--browser) browser=true ;;
"") ;;
*) echo "deps: unknown argument $1 (only --browser)" >&2; exit 2 ;;
esac

# new_enough DIR: DIR holds postgres and initdb of PostgreSQL 15 or newer,
# the oldest the embedded server runs.
new_enough() {
	[ -x "$1/postgres" ] && [ -x "$1/initdb" ] || return 1
	major=$("$1/postgres" --version | sed -n 's/^[^0-9]*\([0-9][0-9]*\).*/\1/p')
	[ -n "$major" ] && [ "$major" -ge 15 ]
}

have_server() {
	[ -n "${LANDLORD_PG_BIN:-}" ] && new_enough "$LANDLORD_PG_BIN" && return 0
	for d in /usr/lib/postgresql/*/bin; do
		new_enough "$d" && return 0
	done
	p=$(command -v postgres 2>/dev/null) && new_enough "$(dirname "$p")"
}

have_pgbouncer() {
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

have_browser() {
	[ "$browser" = false ] && return 0
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
		command -v google-chrome >/dev/null 2>&1
}

if have_server && have_pgbouncer && have_browser; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: PostgreSQL server binaries, PgBouncer or Chromium missing, and no apt-get to install them." >&2
	echo "deps: install PostgreSQL 15 or newer and PgBouncer (macOS: brew install postgresql pgbouncer), or set LANDLORD_PG_BIN; the tests also need Chromium." >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
pkgs="postgresql pgbouncer"
if [ "$browser" = true ]; then
	pkgs="$pkgs chromium"
fi
echo "deps: installing what is missing (apt-get install $pkgs)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
if ! have_server; then
	echo "deps: this distribution's PostgreSQL is older than 15; install PostgreSQL 15 or newer (https://www.postgresql.org/download/linux/) or set LANDLORD_PG_BIN." >&2
	exit 1
fi
have_pgbouncer
have_browser
