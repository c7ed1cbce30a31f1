"""The QR symbols of the stamp are qrcode's own: the mask chosen with arrays is the one qrcode chooses."""

from __future__ import annotations

import random

import numpy as np
import pytest
import qrcode
from qrcode import util

from digitize.signing.qrmask import QRCode, penalty

_CHARS = "abcdefghijklmnopqrstuvwxyzĐđƯưỦủẫ0123456789{}:,\" .-+"


def _matrix(cls: type[qrcode.QRCode], payload: str) -> tuple[list[list[bool]], int]:
    code = cls(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=4)
    code.add_data(payload)
    code.make(fit=True)
    return code.get_matrix(), code.version


@pytest.mark.parametrize("seed", range(4))
def test_symbols_are_qrcodes(seed: int) -> None:
    """Payloads of 1 to 600 characters (versions 1 to ~20), Vietnamese JSON-like: the same modules."""
    rng = random.Random(seed)
    for _ in range(12):
        payload = "".join(rng.choice(_CHARS) for _ in range(rng.randint(1, 600)))
        assert _matrix(QRCode, payload) == _matrix(qrcode.QRCode, payload), payload


def test_penalty_counts_as_qrcode() -> None:
    """Random squares, some with long runs (a dark column), scored as qrcode.util.lost_point scores them."""
    rng = np.random.default_rng(7)
    for n in range(150):
        size = int(rng.choice([21, 25, 45, 57, 77]))
        modules = rng.random((size, size)) < rng.random()
        if n % 3 == 0:
            modules[:, rng.integers(size)] = True
        assert penalty(modules) == util.lost_point(modules.tolist()), n
