"""The settings a test's pipeline runs with, as a user's ``.env`` would give them: one place, not one per test file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def folder_archive_env(root: Path, pki: Any, **extra: str) -> dict[str, str]:
    """A SQLite catalog and a folder archive under ``root``, signed with the demo ``pki``; ``extra`` adds to it."""
    return {
        "DIGITIZE_CATALOG_URL": f"sqlite:///{root / 'catalog.db'}",
        "DIGITIZE_ARCHIVE_URL": (root / "archive").as_uri(),
        "DIGITIZE_SIGNING_PKCS12": str(pki.pkcs12),
        "DIGITIZE_SIGNING_PASSPHRASE": pki.passphrase,
        "DIGITIZE_TRUST_ROOTS": str(pki.root_cert),
        **extra,
    }
