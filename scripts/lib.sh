# Shared helpers for the set-up, run and test scripts: printing what is done,
# installing Debian packages only when missing, and locating the repository.
# shellcheck shell=bash

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

need_root() {
	[ "$(id -u)" = 0 ] || die "run this as root (it installs Debian packages): sudo $0"
}

# True when every named Debian package is installed.
have_packages() {
	local pkg
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
}

APT_UPDATED=0
apt_update_once() {
	if [ "$APT_UPDATED" = 0 ]; then
		info "apt-get update"
		apt-get update -qq
		APT_UPDATED=1
	fi
}

# Installs the named packages unless all of them are already there.
apt_install() {
	local missing=() pkg
	for pkg in "$@"; do
		have_packages "$pkg" || missing+=("$pkg")
	done
	if [ "${#missing[@]}" = 0 ]; then
		info "already installed: $*"
		return
	fi
	apt_update_once
	info "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
