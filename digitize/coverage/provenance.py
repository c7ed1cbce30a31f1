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
from datetime import UTC, date, datetime
from functools import lru_cache

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
    """A column as text: datetimes as ISO (aware ones in UTC), missing values empty, the rest as ``str``."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_convert(UTC) if values.dt.tz is not None else values
        return stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").where(values.notna(), "")
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map({True: "true", False: "false"}).astype(object).where(values.notna(), "")
    text = values.astype(object)
    return text.map(lambda v: "" if v is None or v is pd.NA or v is pd.NaT or v != v else _text(v))


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def inputs_sha256(frames: Mapping[str, pd.DataFrame | None]) -> str:
    """SHA-256 of a canonical serialization of the frames a report read (absent frames named as such)."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        if frame is None:
            digest.update(f"## {name}: none\n".encode())
            continue
        columns = sorted(str(c) for c in frame.columns)
        text = pd.DataFrame({c: _canonical_column(frame[c]) for c in columns}, columns=columns)
        text = text.sort_values(columns, kind="stable") if columns and len(text) else text
        digest.update(f"## {name}: {len(text)} rows\n".encode())
        for column in columns:  # each value length-prefixed: no separator inside a value can shift another
            values = text[column].astype(str)
            digest.update(f"# {column}\n".encode())
            digest.update("".join(values.str.len().astype(str) + ":" + values).encode("utf-8"))
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
