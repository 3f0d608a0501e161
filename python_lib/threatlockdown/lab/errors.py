"""The one exception type of the lab: a message that says what failed and what to do about it."""

from __future__ import annotations


class LabError(Exception):
    """Building, using or tearing down a lab failed; the message is meant for the person running it."""
