"""What makes a report provable: the day, the cut-off, the plan, the code and a hash of its inputs.

Every rendered report carries these, so ``python -m digitize coverage check REPORT`` can read them back,
regenerate the report from the catalog as it was recorded up to the same cut-off, and compare the bytes.
The inputs' hash is over a canonical form of every frame read (columns by name, values as canonical text,
each row's keyed 128-bit fingerprint, fingerprints sorted), so it names the facts, not how a database
happened to return them, and is computed column-wise in a few seconds for a million-row register.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from digitize import __version__
from digitize.config import REPO_ROOT

PROVENANCE_KEYS = (
    "as_of", "cutoff", "plan_id", "plan_sha256", "code_version", "inputs_sha256", "latest_recorded_at",
    "includes_data_recorded_after",
)
"""The provenance fields, in the order every format lists them."""


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, and the git commit when running from a checkout (``0.1.0+g1a2b3c4d5e6f``)."""
    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return __version__
    commit = done.stdout.strip()
    return f"{__version__}+g{commit}" if done.returncode == 0 and commit else __version__


HASH_FORMAT = "inputs-v2"
"""Names the canonical form below; the first bytes hashed, so another form can never give the same digest."""

_KEYS = ("digitize-cov-v2a", "digitize-cov-v2b")
"""Two 16-byte SipHash keys: each row gets two independent 64-bit hashes (128 bits in all)."""

_MISSING = np.uint64(0x6D697373696E6721)
"""A missing value's hash (no value hashes to it in practice; missing values are one canonical value)."""


def _canonical_text(uniques: np.ndarray) -> np.ndarray:
    """Distinct values as canonical text: bools as ``true``/``false``, integral floats as integers, the rest
    as ``str`` (so a driver's ``1`` and ``1.0``, or a date and its ISO text, are the same fact)."""
    if pd.api.types.infer_dtype(uniques, skipna=False) == "string":
        return uniques

    def text(value: object) -> str:
        if isinstance(value, bool | np.bool_):
            return "true" if value else "false"
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return np.fromiter(map(text, uniques), dtype=object, count=len(uniques))


def _column_hashes(values: pd.Series) -> list[np.ndarray]:
    """Per key of :data:`_KEYS`, one uint64 per row: datetimes as epoch nanoseconds (UTC for aware ones),
    anything else by its canonical text, hashed once per distinct value (a register has millions of rows but
    few distinct agencies or dates)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_convert("UTC") if getattr(values.dt, "tz", None) is not None else values
        raw = stamps.dt.as_unit("ns").astype("int64").to_numpy()
        missing = values.isna().to_numpy()
        return [np.where(missing, _MISSING, pd.util.hash_array(raw, hash_key=key, categorize=False)) for key in _KEYS]
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    text = _canonical_text(np.asarray(uniques, dtype=object))
    # code -1 (missing) takes the last entry
    return [np.append(pd.util.hash_array(text, hash_key=key, categorize=False), _MISSING)[codes] for key in _KEYS]


def _row_hashes(frame: pd.DataFrame, columns: list[str]) -> list[np.ndarray]:
    """Per key, one uint64 per row combining its columns' hashes in ``columns`` order (pandas' row combination)."""
    per_column = {c: _column_hashes(frame[c]) for c in columns}
    return [
        pd.util.hash_pandas_object(pd.DataFrame({c: per_column[c][k] for c in columns}, columns=columns),
                                   index=False, hash_key=key).to_numpy(dtype=np.uint64)
        for k, key in enumerate(_KEYS)
    ]


def inputs_sha256(frames: Mapping[str, pd.DataFrame | None]) -> str:
    """SHA-256 of a canonical form of the frames a report read (absent frames named as such).

    Per frame (by name): its row count and column names (sorted), then each row's 128-bit fingerprint
    (two keyed SipHash-2-4 row hashes over the columns' canonical values, :func:`pandas.util.hash_pandas_object`)
    sorted, as little-endian bytes. Sorting the fingerprints makes the order a database returns rows in
    irrelevant without sorting a million strings; values, not database ids, are hashed.
    """
    digest = hashlib.sha256(f"{HASH_FORMAT}\n".encode())
    for name in sorted(frames):
        frame = frames[name]
        if frame is None:
            digest.update(f"## {name}: none\n".encode())
            continue
        columns = sorted(str(c) for c in frame.columns)
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1).reset_index(drop=True)
        digest.update(f"## {name}: {len(frame)} rows; {'|'.join(columns)}\n".encode())
        if not len(frame) or not columns:
            continue
        first, second = _row_hashes(frame, columns)
        order = np.lexsort((second, first))
        digest.update(np.stack([first[order], second[order]], axis=1).astype("<u8").tobytes())
    return digest.hexdigest()


def latest_recorded(frames: Mapping[str, pd.DataFrame | None]) -> datetime | None:
    """The newest ``recorded_at`` of any frame read (frames without the column do not say)."""
    latest: datetime | None = None
    for frame in frames.values():
        if frame is None or "recorded_at" not in frame.columns or not len(frame):
            continue
        value = pd.to_datetime(frame["recorded_at"], utc=True).max()
        if pd.notna(value) and (latest is None or value.to_pydatetime() > latest):
            latest = value.to_pydatetime()
    return latest
