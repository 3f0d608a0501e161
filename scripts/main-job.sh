#!/usr/bin/env bash
# The main job: the reference case. For now (until the end-to-end lab lands) it runs the reference
# attack lines through `tld logtest`: an sshd "Invalid user" line raises rule 5710, and eight of them
# from one source within two minutes raise 5712.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

line='Nov 26 10:00:01 web1 sshd[4242]: Invalid user admin from 198.51.100.23 port 52113'
echo "== one line: the reference event (rule 5710)"
echo "$line" | tld logtest
echo "== as JSON (alerts.json shape)"
echo "$line" | tld logtest --json
echo "== eight attempts from one source: rule 5712 fires on the eighth"
for i in 1 2 3 4 5 6 7 8; do
  echo "Nov 26 10:00:0$i web1 sshd[42$i]: Invalid user admin$i from 198.51.100.23 port 5211$i"
done | tld logtest --json | python3 -c '
import json, sys
for n, raw in enumerate(sys.stdin, 1):
    a = json.loads(raw)
    r = a.get("rule", {})
    print("line %d: rule %s level %s alert=%s srcip=%s" % (n, r.get("id"), r.get("level"), a["alert"], a["data"].get("srcip")))
'
echo "$line" | tld logtest -q -U 5710:5:sshd && echo "reference case: rule 5710, level 5, decoder sshd: OK"
