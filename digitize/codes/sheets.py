"""Cover sheet ids: what the QR code and the Code 128 of a cover sheet carry, and what an officer can read aloud.

A sheet id is ``CS-XXXX-XXXX-XXXX-C``: twelve Crockford base-32 characters taken from the SHA-256 of the
row's key (so printing the same register row again gives the same id), then a Luhn mod 32 check character,
which catches every single mistyped character and every swap of two neighbours. Crockford's alphabet has
no I, L, O or U, so a hand-typed id survives the usual confusions (``O``→``0``, ``I``/``L``→``1``).
Sixty bits keep ids of different rows apart: ten million sheets collide with a chance of about 1 in 20,000,
and the catalog refuses such a collision rather than resolve it to the wrong row.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["SHEET_ID_PREFIX", "parse_sheet_id", "sheet_id_for"]

SHEET_ID_PREFIX = "CS"
"""Prefix of every sheet id ("cover sheet"), so no other code of the project reads as one."""

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_BODY = 12
_SEPARATORS = re.compile(r"[\s\-_.]+")


def _check_character(body: str) -> str:
    """Luhn mod N (N = 32) over ``body``: the character that makes the whole sum divisible by 32."""
    total = 0
    factor = 2
    for char in reversed(body):
        addend = factor * _VALUE[char]
        total += addend // 32 + addend % 32
        factor = 1 if factor == 2 else 2
    return _ALPHABET[(32 - total % 32) % 32]


def _formatted(body: str) -> str:
    groups = "-".join(body[i:i + 4] for i in range(0, _BODY, 4))
    return f"{SHEET_ID_PREFIX}-{groups}-{_check_character(body)}"


def sheet_id_for(key: str) -> str:
    """The sheet id of the row ``key`` names (``register:<id>``, or a planned row's fields): same key, same id."""
    if not key:
        raise ValueError("a sheet id needs a non-empty key")
    number = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") >> (64 - 5 * _BODY)
    body = "".join(_ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(_BODY)))
    return _formatted(body)


def parse_sheet_id(text: str) -> str | None:
    """``text`` as a canonical sheet id (case, spaces, dashes and Crockford's look-alikes normalised), or None
    when it is not one: wrong prefix or length, a character outside the alphabet, or a wrong check character."""
    compact = _SEPARATORS.sub("", text.strip().upper())
    if not compact.startswith(SHEET_ID_PREFIX):
        return None
    rest = compact[len(SHEET_ID_PREFIX):].translate(_ALIASES)
    if len(rest) != _BODY + 1 or any(c not in _VALUE for c in rest):
        return None
    body, check = rest[:_BODY], rest[_BODY]
    return _formatted(body) if _check_character(body) == check else None
