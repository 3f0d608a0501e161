#!/usr/bin/env bash
# `ansible-test sanity` for the threatlockdown.active_response collection, on machines that cannot reach
# ansible-test's bootstrap host (scripts/ansible_test_pip_bootstrap.py). Extra arguments go to ansible-test,
# e.g. `bash scripts/sanity.sh --test validate-modules`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
"$root/.venv/bin/python" scripts/ansible_test_pip_bootstrap.py
cd collections/ansible_collections/threatlockdown/active_response
exec "$root/.venv/bin/ansible-test" sanity --python 3.11 "$@"
