"""Personal data shown without an access record: citizen IDs and tax codes masked to their first and last digits.

A masked holder ID (``0790••••1234``) is enough to tell rows apart and to check
a paper against its holder, and it is no longer personal data on its own. Where
a full ID is shown (the API's answers, ``--show-holder-ids``), the access is
recorded instead (Decree 13/2023).
"""

from __future__ import annotations

import re

MASK = "•"
_LONG_NUMBER = re.compile(r"\d{9,}")
"""Citizen IDs (12 digits), old identity cards (9) and tax codes (10 or 13): no code of ours has 9 digits in a row."""
_HOLDER_IN_PATH = re.compile(r"(/holders/)([^/?#]+)")
_HOLDER_IN_QUERY = re.compile(r"([?&]holder=)([^&#\s]*)")


def mask_holder_id(value: str) -> str:
    """``value`` with all but its first and last four characters (fewer when it is short) replaced by bullets."""
    keep = min(4, len(value) // 3)
    if not value:
        return value
    return value[:keep] + MASK * (len(value) - 2 * keep) + (value[-keep:] if keep else "")


def mask_holder_ids(text: str) -> str:
    """``text`` (a request line, a path, a message) with every holder ID in it masked.

    Holder IDs are found in a ``/holders/<id>`` path segment, a ``holder=`` query parameter, and as any run of
    nine or more digits (a citizen ID searched for as text, say).
    """
    text = _HOLDER_IN_PATH.sub(lambda m: m.group(1) + mask_holder_id(m.group(2)), text)
    text = _HOLDER_IN_QUERY.sub(lambda m: m.group(1) + mask_holder_id(m.group(2)), text)
    return _LONG_NUMBER.sub(lambda m: mask_holder_id(m.group(0)), text)
