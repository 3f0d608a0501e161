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
