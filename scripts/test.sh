#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then lint, type checks, every pytest
# suite (unit, conformance, integration with network namespaces when run as root) and, as root, the
# Molecule scenarios (manager, agent, active_response).
#
#   TLD_MOLECULE=0           skip the Molecule scenarios (quick local runs)
#   TLD_MOLECULE_JOBS=N      how many scenarios run at once (default 3: all of them)
#   TLD_MOLECULE_SCENARIOS   which ones (default "manager agent active_response")
# Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check python_lib tests bench collections roles
echo "== mypy"
mypy
echo "== pytest"
pytest -q -p no:cacheprovider "$@"

if [ "${TLD_MOLECULE:-1}" = 0 ]; then
  echo "== molecule: not run (TLD_MOLECULE=0)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "== molecule: not run (the scenarios build network-namespace hosts: run as root)"
  exit 0
fi

scenarios=(${TLD_MOLECULE_SCENARIOS:-manager agent active_response})
jobs=${TLD_MOLECULE_JOBS:-${#scenarios[@]}}
logs=$(mktemp -d /tmp/tld-molecule-XXXXXX)
molecule_start=$SECONDS

# The wheelhouse and the collection are built once here (cached in .cache/), so the scenarios, which
# all pin the same build, find them ready instead of racing to build them.
echo "== molecule: build the wheelhouse and the collection (playbooks/artifacts.yml)"
if ! ansible-playbook playbooks/artifacts.yml >"$logs/artifacts.log" 2>&1; then
  cat "$logs/artifacts.log"
  echo "molecule: 0 passed, ${#scenarios[@]} failed"
  exit 1
fi

# The scenarios run side by side: each has its own lab (name, subnet, workdir), and most of a scenario's
# time is spent waiting (SSH round trips, the manager's pipeline, response timeouts), not computing.
# Each one's output goes to its own log, printed whole when it ends.
declare -A pid_of
run_one() {
  local scenario=$1
  local begin=$SECONDS
  if molecule test -s "$scenario" >"$logs/$scenario.log" 2>&1; then
    echo "molecule $scenario: passed in $((SECONDS - begin)) s" >"$logs/$scenario.result"
  else
    echo "molecule $scenario: FAILED after $((SECONDS - begin)) s" >"$logs/$scenario.result"
    return 1
  fi
}
running=()
# An interrupted test command takes its scenarios with it (their labs go at the next run's first destroy).
trap 'kill $(jobs -p) 2>/dev/null || true' INT TERM
for scenario in "${scenarios[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "== molecule test -s $scenario (started at +$((SECONDS - molecule_start)) s, log $logs/$scenario.log)"
  run_one "$scenario" &
  pid_of[$scenario]=$!
  running+=("$scenario")
done

passed=0 failed=0
for scenario in "${running[@]}"; do
  # The result file, not wait's status: a job already reaped by `wait -n` above has none left.
  wait "${pid_of[$scenario]}" 2>/dev/null || true
  echo "== molecule test -s $scenario: output"
  cat "$logs/$scenario.log"
  cat "$logs/$scenario.result" 2>/dev/null || echo "molecule $scenario: FAILED (it left no result)"
  if grep -q ": passed in " "$logs/$scenario.result" 2>/dev/null; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done
echo "molecule: all scenarios done in $((SECONDS - molecule_start)) s (logs in $logs)"
echo "molecule: $passed passed, $failed failed"
[ "$failed" = 0 ]
