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


def _canonical_column(values: pd.Series) -> pd.Series:
    """A column as text: datetimes as epoch nanoseconds (UTC for aware ones), missing values empty, the rest
    as pandas' string form. Vectorised: a million-row register is hashed in seconds."""
    missing = values.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        text = values.astype("int64").astype(str).astype(object)
    elif pd.api.types.is_bool_dtype(values.dtype):
        text = values.map({True: "true", False: "false"}).astype(object)
    elif pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        text = values.astype(object)
    else:
        text = values.astype("string").astype(object)
    text[missing] = ""
    return text


def inputs_sha256(frames: Mapping[str, pd.DataFrame | None]) -> str:
    """SHA-256 of a canonical serialization of the frames a report read (absent frames named as such).

    Columns in name order, rows in the order of a hash of their canonical text (so the order a database
    returns them in does not matter; identical rows are interchangeable); each column is its values' lengths
    then the values, so no value can shift into another.
    """
    digest = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        if frame is None:
            digest.update(f"## {name}: none\n".encode())
            continue
        columns = sorted(str(c) for c in frame.columns)
        text = pd.DataFrame({c: _canonical_column(frame[c]) for c in columns}, columns=columns)
        order = np.argsort(pd.util.hash_pandas_object(text, index=False).to_numpy(), kind="stable")
        digest.update(f"## {name}: {len(text)} rows\n".encode())
        for column in columns:
            values = text[column].iloc[order]
            digest.update(f"# {column}\n".encode())
            strings = values.tolist()
            digest.update(np.fromiter(map(len, strings), dtype=np.int64, count=len(strings)).tobytes())
            digest.update("".join(strings).encode("utf-8"))
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
