"""qrcode's QR symbols with the mask chosen in numpy: the same symbols for a fraction of the CPU.

To choose a mask, qrcode lays the data out eight times in pure Python, once per mask pattern, and scores
each layout by the penalty rules of ISO/IEC 18004 as :func:`qrcode.util.lost_point` counts them: ~15 ms of
every stamped signature. Here the data is laid out once by qrcode, the eight masks are applied as arrays and
scored by the same rules, counted the same way, so the chosen mask (the first lowest score) is qrcode's;
the symbol itself is still laid out by qrcode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import qrcode
from numpy.lib.stride_tricks import sliding_window_view

_FINDER_LIKE = (np.array([1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0], dtype=bool),
                np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1], dtype=bool))
"""1:1:3:1:1 dark-light runs with four light modules after or before them: 40 points each."""


def _masks(size: int) -> list[np.ndarray]:
    """The eight mask patterns (True = flip the module), row ``i`` and column ``j`` as qrcode's ``mask_func``."""
    i, j = np.indices((size, size))
    return [(i + j) % 2 == 0, i % 2 == 0, j % 3 == 0, (i + j) % 3 == 0, (i // 2 + j // 3) % 2 == 0,
            (i * j) % 2 + (i * j) % 3 == 0, ((i * j) % 2 + (i * j) % 3) % 2 == 0,
            ((i * j) % 3 + (i + j) % 2) % 2 == 0]


def _long_runs(lines: np.ndarray) -> int:
    """Rule 1 along each line of ``lines``: every run of five or more like modules costs its length less 2."""
    marked = np.full((lines.shape[0], lines.shape[1] + 1), 2, dtype=np.int8)  # a 2 between lines ends every run
    marked[:, :-1] = lines
    flat = marked.ravel()
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, flat.size))
    return int((lengths[lengths >= 5] - 2).sum())


def _finder_like(lines: np.ndarray) -> int:
    """Rule 3 along each line of ``lines``: 40 points per window showing a finder-like pattern."""
    windows = sliding_window_view(lines, 11, axis=1)
    return 40 * sum(int((windows == pattern).all(axis=-1).sum()) for pattern in _FINDER_LIKE)


def penalty(modules: np.ndarray) -> int:
    """:func:`qrcode.util.lost_point` of a square of modules (True = dark), counted with arrays."""
    size = modules.shape[0]
    score = _long_runs(modules) + _long_runs(modules.T)
    block = modules[:-1, :-1]
    score += 3 * int(((block == modules[:-1, 1:]) & (block == modules[1:, :-1]) & (block == modules[1:, 1:])).sum())
    score += _finder_like(modules) + _finder_like(modules.T)
    percent = float(int(modules.sum())) / (size**2)
    return score + int(abs(percent * 100 - 50) / 5) * 10


class QRCode(qrcode.QRCode):
    """A ``qrcode.QRCode`` that scores the eight masks of one data layout with arrays (:func:`penalty`)."""

    _free: np.ndarray | None = None

    def map_data(self, data: Any, mask_pattern: int) -> None:
        self._free = np.array([[cell is None for cell in row] for row in self.modules])  # the data's cells
        super().map_data(data, mask_pattern)

    def best_mask_pattern(self) -> int:
        self.makeImpl(True, 0)  # as qrcode's trial layouts: format and version information left light
        masks = _masks(self.modules_count)
        free = self._free
        assert free is not None  # set by map_data
        plain = np.array(self.modules, dtype=bool) ^ (free & masks[0])
        return int(np.argmin([penalty(plain ^ (free & mask)) for mask in masks]))
