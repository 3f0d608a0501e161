"""Run directories: fresh per run, private, oldest pruned beyond the limit, never one in use."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from threatlockdown.response.ansible_runs import (
    RUN_NAME,
    RunDirectories,
    ensure_private_dir,
    short_private_dir,
)


def test_each_run_gets_a_new_private_directory(tmp_path: Path) -> None:
    runs = RunDirectories(tmp_path / "runs", keep=3)
    first, second = runs.create("batch 1/../x"), runs.create("batch 1/../x")
    assert first != second
    assert first.parent == second.parent == tmp_path / "runs"
    assert RUN_NAME.match(first.name), first.name
    assert "/" not in first.name.split("-", 1)[1] and ".._x" in first.name
    assert stat.S_IMODE(first.stat().st_mode) == 0o700
    assert list(first.iterdir()) == []


def test_prune_keeps_the_newest_and_skips_active_runs(tmp_path: Path) -> None:
    runs = RunDirectories(tmp_path, keep=2)
    made = [runs.create(f"b{i}") for i in range(5)]
    for path in made[1:]:
        runs.finish(path)
    (tmp_path / "not-a-run").mkdir()
    removed = runs.prune()
    # made[0] is still active: kept although it is the oldest.
    assert removed == made[1:3]
    assert runs.existing() == [made[0], made[3], made[4]]
    assert (tmp_path / "not-a-run").is_dir()
    runs.finish(made[0])
    assert runs.prune() == [made[0]]
    assert runs.existing() == made[3:]


def test_keep_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_runs must be at least 1"):
        RunDirectories(tmp_path, keep=0)


def test_private_dir_is_created_0700_and_checked(tmp_path: Path) -> None:
    made = ensure_private_dir(tmp_path / "a" / "sockets")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with pytest.raises(PermissionError, match="mode 0700"):
        ensure_private_dir(loose)
    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(PermissionError, match="must be a directory"):
        ensure_private_dir(link)


def test_short_private_dir_is_stable_and_short(tmp_path: Path) -> None:
    long_anchor = tmp_path / ("q" * 150)
    first = short_private_dir(long_anchor, "ssh")
    assert first == short_private_dir(long_anchor, "ssh") != short_private_dir(tmp_path, "ssh")
    assert len(str(first)) < 60 and first.name.startswith("tld-ssh-")
