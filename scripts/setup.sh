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
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # fail2ban and openssh-server try to start services; the tests start their own.
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
