#!/usr/bin/env bash
# Installs what wstap needs to build and test, when missing: libpcap-dev, zlib1g-dev (build),
# tcpdump, openssl (certificates for the wss:// live test) and python websockets (recording and
# live tests); with --test also chromium (the HTML report's test renders it headless) and
# tshark (packet numbers are compared with Wireshark's), and python haralyzer (a HAR reader).
# Needs root (or sudo) for apt-get.
set -euo pipefail
# One at a time: `make test` installs the test packages in the background while it builds, and
# the steps that need them wait here until that is done.
exec 9>"${TMPDIR:-/tmp}/wstap-install-deps.lock"
flock 9
packages=(libpcap-dev zlib1g-dev pkg-config tcpdump openssl)
[ "${1:-}" = --test ] && packages+=(chromium tshark)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c "import websockets" 2>/dev/null; then
    echo "installing python websockets" >&2
    python3 -m pip install -q websockets
fi
if [ "${1:-}" = --test ] && ! python3 -c "import haralyzer" 2>/dev/null; then
    echo "installing python haralyzer" >&2
    python3 -m pip install -q haralyzer
fi
