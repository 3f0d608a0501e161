"""Make ``ansible_collections.threatlockdown...`` importable when pytest runs outside ansible-test."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/unit/conftest.py -> the "collections" directory that holds ansible_collections/
_COLLECTIONS_ROOT = Path(__file__).resolve().parents[5]
if str(_COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS_ROOT))
