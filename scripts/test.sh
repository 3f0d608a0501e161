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
# (.cache/) that the first one builds. TLD_SKIP_MOLECULE=1 skips them (quick local runs).
if [ "$(id -u)" = 0 ] && [ -z "${TLD_SKIP_MOLECULE:-}" ]; then
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
  echo "== molecule: skipped (needs root; TLD_SKIP_MOLECULE=${TLD_SKIP_MOLECULE:-})"
fi
