#!/usr/bin/env bash
# Put promtool (Prometheus's rule checker and rule unit-test runner) into .venv/bin for the deploy/monitoring
# tests, from Debian's prometheus package without installing that package: installing it would also
# enable and start a Prometheus server on :9090, which a test tool has no business doing.
#
# Does nothing when a promtool is already on PATH or in .venv/bin. Otherwise `apt-get download` (no root
# needed when the package lists exist; as root, one `apt-get update` when they do not) and `dpkg-deb -x`.
# Not on Debian/Ubuntu, or offline: says so and exits 0; the promtool tests then skip, saying why.
#
# Usage: scripts/install-promtool.sh [VENV]   (default .venv)
set -euo pipefail

venv=${1:-.venv}
log() { echo "install-promtool: $*" >&2; }

if command -v promtool >/dev/null 2>&1 || [[ -x "$venv/bin/promtool" ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    log "no apt-get/dpkg-deb here: the promtool tests will skip (install Prometheus's promtool to run them)"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; _apt cannot write to a private mktemp dir, so let it.
chmod 755 "$work"
cd "$work"
if ! apt-get download -qq prometheus 2>/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && apt-get download -qq prometheus 2>/dev/null || true
    fi
fi
deb=$(compgen -G 'prometheus_*.deb' | head -n1 || true)
if [[ -z "$deb" ]]; then
    log "could not download Debian's prometheus package: the promtool tests will skip"
    exit 0
fi
dpkg-deb -x "$deb" extracted
cd - >/dev/null
install -m 755 "$work/extracted/usr/bin/promtool" "$venv/bin/promtool"
log "installed $("$venv/bin/promtool" --version 2>&1 | head -n1)"
