"""Puts a pip bootstrap script where ansible-test looks for its cached copy, when it cannot download one.

ansible-test sanity builds a virtualenv per test and bootstraps pip in it with a script it downloads from
ci-files.testing.ansible.com and caches as ~/.ansible/test/cache/get_pip_<version>.py. Machines that
reach a package index but not that host (as in CI here) would fail before any test runs. The stand-in
written here does the same job with the interpreter's own ensurepip, then `pip install`s the packages
ansible-test asks for (through the machine's usual pip configuration and index).

    .venv/bin/python scripts/ansible_test_pip_bootstrap.py     # prints what it did
"""

from __future__ import annotations

import sys
import types
import urllib.request
from pathlib import Path

from ansible_test._internal.python_requirements import get_venv_packages  # type: ignore[import-untyped]

STAND_IN = """\
# Written by ThreatLockDown's scripts/ansible_test_pip_bootstrap.py: ci-files.testing.ansible.com was not
# reachable. Installs the interpreter's bundled pip, then the packages ansible-test asked for.
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
packages = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *packages])
"""
URL = "https://ci-files.testing.ansible.com/ansible-test/get-pip-{}.py"


def main() -> int:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    # get_venv_packages reads nothing but the Python version from its argument.
    pip_version: str = get_venv_packages(types.SimpleNamespace(version=python))["pip"]
    cache = Path.home() / ".ansible/test/cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    if cache.exists():
        print(f"ansible-test pip bootstrap: {cache} already there")
        return 0
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(URL.format(pip_version), timeout=15) as response:
            cache.write_bytes(response.read())
        print(f"ansible-test pip bootstrap: downloaded {cache}")
    except OSError as exc:
        cache.write_text(STAND_IN)
        print(f"ansible-test pip bootstrap: download failed ({exc}); wrote the ensurepip stand-in {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
