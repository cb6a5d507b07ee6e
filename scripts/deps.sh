#!/bin/sh
# Installs what a fresh Debian or Ubuntu machine lacks to build, run and test
# Landlord: the PostgreSQL server binaries. Everything else comes from the Go
# module proxy. It changes nothing when the binaries are already there.
set -eu

have_server() {
	[ -n "${LANDLORD_PG_BIN:-}" ] && [ -x "$LANDLORD_PG_BIN/postgres" ] && return 0
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/postgres" ] && [ -x "$d/initdb" ] && return 0
	done
	command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1
}

if have_server; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: no PostgreSQL server binaries found, and no apt-get to install them." >&2
	echo "deps: install PostgreSQL 15 or newer (macOS: brew install postgresql) or set LANDLORD_PG_BIN." >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "deps: installing the PostgreSQL server (apt-get install postgresql)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_server
