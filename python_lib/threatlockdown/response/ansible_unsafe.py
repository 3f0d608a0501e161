"""Turn log-derived data into Ansible extra vars that Ansible never evaluates as templates.

Extra vars are trusted by every ansible-core version: a plain string holding ``{{ lookup('pipe','id') }}``
would run on the controller as soon as a task uses it. Each string is therefore sent in Ansible's
JSON "unsafe" form, ``{"__ansible_unsafe": "..."}``, which its extra-vars loader decodes as an untrusted
string (literal text, still usable as data).

Two more things are needed, found by testing ansible-core 2.19 (docs/execution.md):

- Ansible's JSON decoder treats any object with a key ``__ansible_unsafe`` or ``__ansible_vault`` as one
  of its markers. A log field with such a name either fails the run (vault) or, when its value is not a
  string, makes the JSON decoding fail, and Ansible then re-reads the file as YAML, where the markers
  are ordinary dicts and every string is trusted again. So keys starting with ``__ansible`` are renamed.
- The same fallback happens when a string cannot be encoded as UTF-8 (lone surrogates from undecodable
  log bytes), so those code points are replaced by ``\\udcXX`` text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

UNSAFE_KEY = "__ansible_unsafe"
RESERVED_KEY_PREFIX = "__ansible"
ESCAPED_KEY_PREFIX = "tld_escaped"
# Deeper data is replaced by a note so a hostile alert cannot exhaust the encoder or Ansible.
MAX_DEPTH = 64


def clean_text(text: str) -> str:
    """The string with anything UTF-8 cannot encode (lone surrogates) spelled out as ``\\udcXX``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def safe_key(key: object) -> str:
    """A mapping key as it reaches Ansible: text, and never one of its JSON marker names."""
    text = clean_text(key if isinstance(key, str) else str(key))
    if text.startswith(RESERVED_KEY_PREFIX):
        return ESCAPED_KEY_PREFIX + text
    return text


def unsafe(value: object, depth: int = 0) -> Any:
    """``value`` with every string wrapped as an Ansible unsafe string, recursively.

    Mappings become dicts (keys made safe with ``safe_key``), sequences become lists, ``bool``/``int``/
    finite ``float``/``None`` stay as they are; anything else (and NaN/infinity, which JSON cannot
    carry) becomes its ``str()`` text.
    """
    if isinstance(value, str):
        return {UNSAFE_KEY: clean_text(value)}
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {UNSAFE_KEY: str(value)}
    if depth >= MAX_DEPTH:
        return {UNSAFE_KEY: f"<cut: nested deeper than {MAX_DEPTH} levels>"}
    if isinstance(value, Mapping):
        return {safe_key(k): unsafe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [unsafe(v, depth + 1) for v in value]
    return {UNSAFE_KEY: clean_text(str(value))}


def plain(value: Any) -> Any:
    """The inverse of ``unsafe`` for data it produced (markers unwrapped); for tests and reports."""
    if isinstance(value, dict):
        if set(value) == {UNSAFE_KEY} and isinstance(value[UNSAFE_KEY], str):
            return value[UNSAFE_KEY]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
