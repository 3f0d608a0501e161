#!/usr/bin/env bash
# The main job: the reference case end to end, on a fresh Debian 12 machine as root.
#   1. installs what it needs (scripts/setup.sh);
#   2. builds a network-namespace lab: manager, web1, web2 (sshd, rsyslog) and an attacker (no sshd);
#   3. deploys with `ansible-playbook playbooks/site.yml` (manager + agents, policy from inventory vars:
#      firewall-drop, location local, rule 5710, timeout 30 s here; the reference policy uses 100 s);
#   4. runs the attack (SSH as a non-existent user against web1) and prints the timeline: the sshd line,
#      the rule 5710 alert, the active response on web1, the block verified, the revert, the reconnect.
# The lab is torn down at the end, also on failure or Ctrl-C, so the job can simply be run again.
# Exits non-zero if any step fails. Extra arguments go to `tld demo` (e.g. --timeout 100, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "main-job: run as root (the lab uses network and mount namespaces)" >&2
  exit 1
fi
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" VIRTUAL_ENV="$PWD/.venv"
exec tld demo --repo "$PWD" "$@"
