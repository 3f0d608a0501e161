"""The collection as Galaxy and ansible-test see it: `ansible-galaxy collection build` and sanity."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "collections/ansible_collections/threatlockdown/active_response"
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (COLLECTION / "plugins/modules").glob("*.py") if p.stem != "__init__")


def test_galaxy_build_packs_every_module(tmp_path: Path) -> None:
    # Built from a copy: the build must not depend on (or leave) anything in the working tree.
    source = tmp_path / "src"
    shutil.copytree(COLLECTION, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
    completed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", str(source), "--output-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    tarball = tmp_path / f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest_file = archive.extractfile("MANIFEST.json")
        assert manifest_file is not None
        manifest = json.load(manifest_file)
    assert manifest["collection_info"]["name"] == "active_response"
    assert manifest["collection_info"]["license"] == ["Apache-2.0"]
    assert len(MODULES) >= 6
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    assert "meta/runtime.yml" in names and "plugins/module_utils/validation.py" in names


@pytest.mark.slow
def test_ansible_test_sanity_passes() -> None:
    # Every sanity test ansible-core 2.19 runs for a collection (validate-modules, pylint, pep8, import,
    # yamllint, ...), in ansible-test's own virtualenvs; scripts/sanity.sh makes the pip bootstrap work
    # where ansible-test's download host is unreachable. A first run builds the venvs (2-3 min).
    completed = subprocess.run(
        ["bash", str(REPO / "scripts/sanity.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    for test in ("validate-modules", "pylint", "import", "yamllint", "pep8"):
        assert f'Running sanity test "{test}"' in output, output[-3000:]
