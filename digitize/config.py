"""Settings read from the environment, so the same code runs from the CLI, Airflow workers and tests.

Every setting is an environment variable ``DIGITIZE_*``; ``make`` targets load
the git-ignored ``.env`` file that holds the generated secrets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CODE_TEMPLATE = "{agency}.{year}.{kind}.{seq:06d}"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _secret(name: str) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/systemd style)."""
    path = _env(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:  # the error names the file, never its content
            from digitize.errors import ConfigurationError

            raise ConfigurationError(f"{name}_FILE={path}: cannot read it ({exc.__class__.__name__}).",
                                     hint=f"Fix the file's path or permissions, or unset {name}_FILE.") from None
    return _env(name)


@dataclass(frozen=True)
class Settings:
    """Everything the library needs to know about its surroundings."""

    catalog_url: str
    """SQLAlchemy URL of the catalog (SQLite file by default, PostgreSQL in production)."""

    s3_endpoint_url: str | None
    """S3-compatible endpoint (MinIO, moto); ``None`` means AWS itself."""

    s3_bucket: str
    """Bucket that holds the archive."""

    s3_region: str
    """Region name sent to the S3 client."""

    signing_pkcs12: Path | None
    """PKCS#12 file with the agency's key and certificate chain (or the PKCS#11 settings instead)."""

    signing_passphrase: str | None = field(repr=False)
    """Passphrase of the PKCS#12 file; never logged (excluded from repr)."""

    trust_roots: tuple[Path, ...]
    """Root certificates (PEM/DER files) trusted when verifying signatures."""

    signing_level: str
    """PAdES level: B-B, B-T, B-LT or B-LTA (B-T and up need ``tsa_url``)."""

    tsa_url: str | None
    """RFC 3161 timestamp authority used from B-T up."""

    signing_stamp: bool
    """Draw the visible Decree 30/2020 stamp (and the QR of Circular 01/2023 on results)."""

    source_system: str
    """Name of this system, written into the QR code of results."""

    code_template: str
    """Template of the document code; fields: agency, year, kind, seq."""

    quiet_seconds: int
    """A batch without ``_READY`` is picked up only after nothing in it changed for this long."""

    ocr_jobs: int
    """Tesseract processes run at once (one thread each)."""

    min_dpi: int
    """Resolution below which a page is flagged (Decree 30/2020 asks for 200 dpi)."""

    plan_path: Path
    """Plan targets (JSON in ``schemas/plans``) used by coverage reports."""

    work_dir: Path | None
    """Scratch folder for temporary files; ``None`` uses the system's."""

    low_dpi_action: str = "flag"
    """A page below ``min_dpi``: ``flag`` it for review (archived) or ``quarantine`` the document (LOW_RESOLUTION)."""

    move_done: bool = False
    """Move each original into ``<batch>/done/`` once its archived copy is verified (default: leave the inbox as is)."""

    stack_unit: str | None = None
    """Scanning unit (agency code) of stack batches that carry no ``_UNIT`` file (``DIGITIZE_STACK_UNIT``)."""

    lease_seconds: int = 600
    """A worker's claim on a document lapses after this long without renewal (it is renewed while it works)."""

    ocr_page_timeout: float = 300.0
    """Seconds Tesseract may spend on one page before the document fails with OCR_FAILED."""

    signing_pkcs11_module: Path | None = None
    """PKCS#11 library of the token or HSM holding the agency key (instead of ``signing_pkcs12``)."""

    signing_pkcs11_token: str | None = None
    """Label of that token."""

    signing_pkcs11_key: str | None = None
    """Label of the agency's private key in the token."""

    signing_pkcs11_cert: str | None = None
    """Label of its certificate in the token; ``None``: the key's label."""

    signing_pkcs11_chain: tuple[Path, ...] = ()
    """Intermediate CA certificates (PEM/DER) to embed that the token does not hold."""

    signing_pkcs11_pin: str | None = field(default=None, repr=False)
    """User PIN of the token; never logged (excluded from repr)."""
    archive_url: str | None = None
    """Where the archive is: ``file:///abs/path`` (a folder on this machine) or ``s3://bucket``;
    ``None``: S3, bucket ``s3_bucket`` (``DIGITIZE_ARCHIVE_URL``, see :attr:`archive_folder`)."""

    @property
    def archive_folder(self) -> Path | None:
        """The folder of a ``file://`` archive, or ``None`` when the archive is S3."""
        return _archive_target(self.archive_url)[0]

    max_pages: int = 5_000
    """Most pages in one document; more is quarantined with TOO_MANY_PAGES."""

    max_stream_mb: int = 512
    """Most MiB one PDF stream or one page image may decode to; more is quarantined with DECODED_TOO_LARGE."""

    max_decoded_mb: int = 65_536
    """Most MiB one document may decode to, all pages together; more is quarantined with DECODED_TOO_LARGE."""

    auto_match: str = "off"
    """``accepted``: a batch of scans without manifest gets one from its accepted proposals (``propose``) inside
    ``process`` and the DAGs; ``off`` (default): an officer confirms proposals first (a wrong match is signed)."""

    @property
    def signing_passphrase_bytes(self) -> bytes | None:
        return self.signing_passphrase.encode("utf-8") if self.signing_passphrase is not None else None


def load_settings() -> Settings:
    """Read the settings from the environment, with defaults that suit a single machine."""
    home = Path(_env("AIRFLOW_HOME", str(REPO_ROOT)) or REPO_ROOT)
    pkcs12 = _env("DIGITIZE_SIGNING_PKCS12")
    module = _env("DIGITIZE_SIGNING_PKCS11_MODULE")
    roots = _env("DIGITIZE_TRUST_ROOTS", "") or ""
    work = _env("DIGITIZE_WORK_DIR")
    archive_url = _env("DIGITIZE_ARCHIVE_URL")
    bucket = _archive_target(archive_url)[1] or _env("DIGITIZE_S3_BUCKET", "digitize-archive") or "digitize-archive"
    return Settings(
        catalog_url=_env("DIGITIZE_CATALOG_URL", f"sqlite:///{home / 'var' / 'catalog.db'}") or "",
        s3_endpoint_url=_env("DIGITIZE_S3_ENDPOINT_URL"),
        s3_bucket=bucket,
        s3_region=_env("DIGITIZE_S3_REGION", "us-east-1") or "us-east-1",
        signing_pkcs12=Path(pkcs12) if pkcs12 else None,
        signing_passphrase=_secret("DIGITIZE_SIGNING_PASSPHRASE"),
        trust_roots=tuple(Path(p) for p in roots.split(os.pathsep) if p),
        signing_level=_env("DIGITIZE_SIGNING_LEVEL", "B-B") or "B-B",
        tsa_url=_env("DIGITIZE_TSA_URL"),
        signing_stamp=(_env("DIGITIZE_SIGNING_STAMP", "true") or "true").lower() in ("1", "true", "yes"),
        source_system=_env("DIGITIZE_SOURCE_SYSTEM", "digitize") or "digitize",
        code_template=_env("DIGITIZE_CODE_TEMPLATE", DEFAULT_CODE_TEMPLATE) or DEFAULT_CODE_TEMPLATE,
        quiet_seconds=int(_env("DIGITIZE_QUIET_SECONDS", "60") or 60),
        ocr_jobs=int(_env("DIGITIZE_OCR_JOBS", str(os.cpu_count() or 1)) or 1),
        min_dpi=int(_env("DIGITIZE_MIN_DPI", "200") or 200),
        plan_path=Path(
            _env("DIGITIZE_PLAN", str(REPO_ROOT / "schemas" / "plans" / "tien-giang-155-2021.json")) or ""
        ),
        work_dir=Path(work) if work else None,
        low_dpi_action=_choice("DIGITIZE_LOW_DPI_ACTION", ("flag", "quarantine")),
        move_done=(_env("DIGITIZE_MOVE_DONE", "false") or "false").lower() in ("1", "true", "yes"),
        lease_seconds=int(_env("DIGITIZE_LEASE_SECONDS", "600") or 600),
        stack_unit=(_env("DIGITIZE_STACK_UNIT") or "").strip() or None,
        ocr_page_timeout=float(_env("DIGITIZE_OCR_PAGE_TIMEOUT", "300") or 300),
        signing_pkcs11_module=Path(module) if module else None,
        signing_pkcs11_token=_env("DIGITIZE_SIGNING_PKCS11_TOKEN"),
        signing_pkcs11_key=_env("DIGITIZE_SIGNING_PKCS11_KEY"),
        signing_pkcs11_cert=_env("DIGITIZE_SIGNING_PKCS11_CERT"),
        signing_pkcs11_chain=tuple(Path(p) for p in (_env("DIGITIZE_SIGNING_PKCS11_CHAIN", "") or "").split(os.pathsep)
                                   if p),
        signing_pkcs11_pin=_secret("DIGITIZE_SIGNING_PKCS11_PIN"),
        archive_url=archive_url,
        max_pages=_positive("DIGITIZE_MAX_PAGES", 5_000),
        max_stream_mb=_positive("DIGITIZE_MAX_STREAM_MB", 512),
        max_decoded_mb=_positive("DIGITIZE_MAX_DECODED_MB", 65_536),
        auto_match=_choice("DIGITIZE_AUTO_MATCH", ("off", "accepted")),
    )


def _archive_target(url: str | None) -> tuple[Path | None, str | None]:
    """(folder, bucket) named by ``DIGITIZE_ARCHIVE_URL``: one of them for a valid URL, neither when unset."""
    if url is None:
        return None, None
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path.startswith("/"):
        return Path(url2pathname(parsed.path)), None
    if parsed.scheme == "s3" and parsed.netloc and parsed.path in ("", "/"):
        return None, parsed.netloc
    from digitize.errors import ConfigurationError

    raise ConfigurationError(
        f"DIGITIZE_ARCHIVE_URL={url!r} is neither file:///absolute/folder nor s3://bucket",
        hint="Set DIGITIZE_ARCHIVE_URL=file:///srv/digitize/archive (three slashes: an absolute path) "
             "or s3://BUCKET (the endpoint comes from DIGITIZE_S3_ENDPOINT_URL), or leave it unset for S3.")


def _positive(name: str, default: int) -> int:
    """A whole number above zero (a limit); anything else stops the run."""
    value = (_env(name, str(default)) or str(default)).strip()
    if not value.isdigit() or int(value) <= 0:
        from digitize.errors import ConfigurationError

        raise ConfigurationError(f"{name}={value!r}: expected a whole number above 0")
    return int(value)


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    """A setting with a fixed set of values (the first is the default); anything else stops the run."""
    value = (_env(name, allowed[0]) or allowed[0]).strip().lower()
    if value not in allowed:
        from digitize.errors import ConfigurationError

        raise ConfigurationError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value
