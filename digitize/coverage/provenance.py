"""What makes a report provable: the day, the cut-off, the plan, the code and a hash of its inputs.

Every rendered report carries these, so ``python -m digitize coverage check REPORT`` can read them back,
regenerate the report from the catalog as it was recorded up to the same cut-off, and compare the bytes.
The inputs' hash is over a canonical text of every frame read (columns by name, rows sorted, values as
ISO text), so it names the facts, not how a database happened to return them.
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


SORT_KEYS: dict[str, tuple[str, ...]] = {
    "agencies": ("code", "valid_from", "recorded_at"),
    "register": ("register_id",),
    "archived": ("code",),
    "scans": ("code", "version"),
    "successors": ("predecessor_code", "successor_code", "effective_date"),
    "needs": ("new_dossier_code", "document", "outcome", "at"),
}
"""The columns that order each frame's rows canonically (every column when they leave ties)."""


def _canonical_column(values: pd.Series) -> pd.Series:
    """A column as text (an object Series of ``str``): datetimes as epoch nanoseconds (UTC for aware ones),
    missing values empty, the rest as ``str``. A million-row register is hashed in seconds."""
    missing = values.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        raw = values.astype("int64").to_numpy()
    elif pd.api.types.is_bool_dtype(values.dtype):
        raw = np.where(values.to_numpy(dtype=bool, na_value=False), "true", "false")
    else:
        raw = values.to_numpy(dtype=object)
    text = np.fromiter(map(str, raw), dtype=object, count=len(raw))
    text[missing] = ""
    return pd.Series(text, index=values.index, dtype=object, copy=False)


def inputs_sha256(frames: Mapping[str, pd.DataFrame | None]) -> str:
    """SHA-256 of a canonical serialization of the frames a report read (absent frames named as such).

    Per frame: its columns in name order, each as its values' text in the frame's canonical row order
    (:data:`SORT_KEYS`, so the order a database returns rows in does not matter), NUL-separated (no catalog
    text holds NUL: PostgreSQL refuses it), after the frame's row count.
    """
    digest = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        if frame is None:
            digest.update(f"## {name}: none\n".encode())
            continue
        columns = sorted(str(c) for c in frame.columns)
        text = pd.DataFrame({c: _canonical_column(frame[c]) for c in columns}, columns=columns).reset_index(drop=True)
        keys = [c for c in SORT_KEYS.get(name, ()) if c in text.columns]
        if not keys or text.duplicated(keys).any():
            keys = columns
        if keys and len(text):
            text = text.sort_values(keys, kind="stable")
        digest.update(f"## {name}: {len(text)} rows\n".encode())
        for column in columns:
            digest.update(f"# {column}\n".encode())
            digest.update("\x00".join(text[column].tolist()).encode("utf-8"))
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
