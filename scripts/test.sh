#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then lint, type checks and every test
# suite (unit, conformance, integration with network namespaces when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check python_lib tests bench collections
echo "== mypy"
mypy
echo "== pytest"
pytest -q -p no:cacheprovider "$@"

# The Molecule scenarios build network-namespace hosts: root only. They share the wheelhouse cache
# (.cache/) that the first one builds. For now they are opt-in (TLD_MOLECULE=1): under load they take
# 5-13 min each and their wheelhouse build still depends on the package index; making them part of
# every run is open work (issue 6).
if [ "$(id -u)" = 0 ] && [ -n "${TLD_MOLECULE:-}" ]; then
  passed=0 failed=0
  for scenario in manager agent active_response; do
    echo "== molecule test -s $scenario"
    start=$SECONDS
    if molecule test -s "$scenario"; then
      passed=$((passed + 1)); echo "molecule $scenario: passed in $((SECONDS - start)) s"
    else
      failed=$((failed + 1)); echo "molecule $scenario: FAILED after $((SECONDS - start)) s"
    fi
  done
  echo "molecule: $passed passed, $failed failed"
  [ "$failed" = 0 ]
else
  echo "== molecule: not run (set TLD_MOLECULE=1, as root, to run the manager, agent and active_response scenarios)"
fi
