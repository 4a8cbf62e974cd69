#!/usr/bin/env bash
# Installs what neonauth needs on this machine when it is missing:
#   postgres  the PostgreSQL server binaries (make run, make test)
#   test      the above, plus Chromium for the browser test and Node packages for e2e/
# Debian and Ubuntu only, as root; elsewhere it says what to install.
set -euo pipefail

want=${1:-postgres}

have_postgres() {
	command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

apt_updated=0
apt_install() {
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "install-deps: please install: $*" >&2
		echo "  (on Debian/Ubuntu as root: apt-get install $*)" >&2
		exit 1
	fi
	if [ "$apt_updated" = 0 ]; then
		apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! have_postgres; then
	echo "install-deps: installing the PostgreSQL server"
	apt_install postgresql
fi

if [ "$want" = test ]; then
	if [ ! -x /usr/bin/chromium ]; then
		echo "install-deps: installing Chromium for the browser test"
		apt_install chromium
	fi
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		echo "install-deps: installing Node.js for the client tests"
		apt_install nodejs npm
	fi
fi
