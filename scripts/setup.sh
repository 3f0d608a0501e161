#!/usr/bin/env bash
# Installs everything ThreatLockDown's main job and tests need on a fresh Debian 12 machine (as root):
# Debian packages (firewalls, OpenSSH, rsyslog, fail2ban for the benchmark) and a virtualenv in .venv
# with the package and its dev tools. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc
  iproute2 nftables iptables ipset procps psmisc
  openssh-server openssh-client rsyslog
  fail2ban sudo passwd git openssl util-linux
  firewalld dbus
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages ${missing[*]}; run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # No package may start its service on this machine: firewalld would firewall the machine itself, and
  # the tests start their own sshd, rsyslogd, fail2ban and firewalld inside namespaces. policy-rc.d 101
  # is Debian's "action forbidden" (honoured by invoke-rc.d and deb-systemd-invoke).
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$guard" ] || rm -f "$guard"
  (service fail2ban stop || true) >/dev/null 2>&1
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.tld-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/tld)"
