#!/bin/sh
# Installs what a fresh Debian or Ubuntu machine lacks to build, run and test
# Landlord: the PostgreSQL server binaries, and PgBouncer for the tests that
# run tenant traffic through a transaction pooler. Everything else comes from
# the Go module proxy. It changes nothing when they are already there.
set -eu

have_server() {
	[ -n "${LANDLORD_PG_BIN:-}" ] && [ -x "$LANDLORD_PG_BIN/postgres" ] && return 0
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/postgres" ] && [ -x "$d/initdb" ] && return 0
	done
	command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1
}

have_pgbouncer() {
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

if have_server && have_pgbouncer; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: PostgreSQL server binaries or PgBouncer missing, and no apt-get to install them." >&2
	echo "deps: install PostgreSQL 15 or newer and PgBouncer (macOS: brew install postgresql pgbouncer), or set LANDLORD_PG_BIN." >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "deps: installing the PostgreSQL server and PgBouncer (apt-get install postgresql pgbouncer)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql pgbouncer >/dev/null
have_server && have_pgbouncer
