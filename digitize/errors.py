"""Exception hierarchy with stable reason codes.

Every error a document can meet carries a ``reason`` (a stable code stored in
the catalog and shown to officers), an ``exit_code`` for the CLI, and a
``hint`` telling the officer what to do. Three families matter to callers:

- :class:`InputError` and its subclasses: the document is bad; quarantine it,
  keep the original where it is, go on with the rest of the batch.
- :class:`TransientError`: the world is briefly unavailable (S3 down, database
  locked); retry later, never quarantine.
- :class:`ConfigurationError`: the run itself cannot happen; stop and say why.

Messages never contain secrets (keys, PINs, passwords, tokens).
"""

from __future__ import annotations


class DigitizeError(Exception):
    """Base class: a failure with a stable reason code and a hint for the user."""

    reason: str = "INTERNAL_ERROR"
    exit_code: int = 1
    default_hint: str = "Report this to IT staff with the run's log."

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        return f"[{self.reason}] {self.message}"


class ConfigurationError(DigitizeError):
    """The run cannot start: a setting, a certificate or a service is missing."""

    reason = "CONFIGURATION_ERROR"
    exit_code = 2
    default_hint = "Fix the configuration named in the message (see README, Configuration) and run again."


class TransientError(DigitizeError):
    """A service is briefly unavailable; the task should be retried, the document not quarantined."""

    reason = "TRANSIENT_ERROR"
    exit_code = 75  # EX_TEMPFAIL
    default_hint = "Nothing to fix in the document: the run will retry. If it persists, check the service named."


class ArchiveUnavailable(TransientError):
    reason = "ARCHIVE_UNAVAILABLE"
    default_hint = "Check that the S3 endpoint is reachable; the document will be retried."


class CatalogUnavailable(TransientError):
    reason = "CATALOG_UNAVAILABLE"
    default_hint = "Check the catalog database (locked or restarting); the document will be retried."


class BatchNotReady(TransientError):
    """A batch named for a run is still being copied: no ``_READY``, and it changed within the quiet period."""

    reason = "BATCH_NOT_READY"
    default_hint = ("Put an empty _READY file in the batch folder once its copy is complete, or wait for the quiet "
                    "period (DIGITIZE_QUIET_SECONDS): the task retries.")


class InputError(DigitizeError):
    """The document itself is unusable: quarantine it with this reason."""

    reason = "INPUT_ERROR"
    exit_code = 65  # EX_DATAERR
    default_hint = "Check the scanned file and the manifest row, fix them and resubmit the batch."


class ManifestError(InputError):
    reason = "MANIFEST_INVALID"
    default_hint = "Correct the manifest row named in the message (save it as UTF-8 CSV) and resubmit."


class ProposalInvalid(InputError):
    """A proposal workbook (``propose --apply``) whose cells were damaged or that names unknown rows."""

    reason = "PROPOSAL_INVALID"
    default_hint = ("Open the proposal again from the file 'propose' wrote (or run 'propose' again), change only "
                    "the status and register_id columns, and keep IDs and dates as text.")


class MissingFile(InputError):
    reason = "FILE_MISSING"
    default_hint = "Copy the file named in the manifest into the batch folder, or remove its row, and resubmit."


class EmptyFile(InputError):
    reason = "EMPTY_FILE"
    default_hint = "The file has zero bytes: rescan the document or copy it again, then resubmit."


class UnsupportedFormat(InputError):
    reason = "UNSUPPORTED_FORMAT"
    default_hint = "Scan to PDF, TIFF, JPEG or PNG and resubmit."


class CorruptFile(InputError):
    reason = "CORRUPT_FILE"
    default_hint = "The file is damaged or truncated: rescan it or copy it again, then resubmit."


class EncryptedPdf(InputError):
    reason = "ENCRYPTED_PDF"
    default_hint = "Remove the password protection from the PDF (or rescan the paper) and resubmit."


class AlreadySigned(InputError):
    reason = "ALREADY_SIGNED"
    default_hint = ("The PDF already carries a digital signature that OCR would destroy: "
                    "archive it as an electronic original instead.")


class ImageTooLarge(InputError):
    reason = "IMAGE_TOO_LARGE"
    default_hint = "The image declares an implausible size (possible decompression bomb): rescan at 200–300 dpi."


class TooManyPages(InputError):
    reason = "TOO_MANY_PAGES"
    default_hint = ("Split the document into smaller ones and resubmit them; if it truly is one document, "
                    "raise DIGITIZE_MAX_PAGES.")


class DecodedTooLarge(InputError):
    reason = "DECODED_TOO_LARGE"
    default_hint = ("The file expands to far more data than a scan does (possible decompression bomb): rescan the "
                    "paper or export the file again; raise DIGITIZE_MAX_STREAM_MB or DIGITIZE_MAX_DECODED_MB only "
                    "for a document you trust.")


class PdfTooComplex(InputError):
    reason = "PDF_TOO_COMPLEX"
    default_hint = "Print the PDF to a new PDF (or rescan the paper) and resubmit."


class LowResolution(InputError):
    reason = "LOW_RESOLUTION"
    default_hint = "Decree 30/2020 asks for at least 200 dpi: rescan at 200–300 dpi and resubmit."


class OcrFailed(InputError):
    reason = "OCR_FAILED"
    default_hint = "Tesseract could not read a page: check the scan quality, rescan if needed, and resubmit."


class AgencyUnknown(InputError):
    reason = "AGENCY_UNKNOWN"
    default_hint = ("Import the agency into the catalog (python -m digitize agencies import) "
                    "or correct agency_code, then resubmit.")


class SignatureFailed(DigitizeError):
    """Signing produced a file that does not verify: never archived as if fine."""

    reason = "SIGNATURE_INVALID"
    default_hint = "Check the agency certificate (validity, key usage) and its trust chain, then retry the document."


class ArchiveIntegrityError(DigitizeError):
    """What S3 holds differs from what was sent, or an object would be overwritten."""

    reason = "ARCHIVE_INTEGRITY"
    default_hint = "Do not resubmit blindly: IT staff should compare the archived object with the catalog."


class ArchiveRejected(ConfigurationError):
    """S3 refused the request for good (403, missing bucket, bad request): retrying will not help."""

    reason = "ARCHIVE_REJECTED"
    default_hint = "Check the S3 credentials, bucket name and bucket settings (versioning, Object Lock) in the message."


class ArchiveNotFound(DigitizeError):
    """The archive holds no object under the key asked for."""

    reason = "ARCHIVE_NOT_FOUND"
    default_hint = "Check the document code and version; the catalog records the key of every archived object."


class CodeError(InputError, ValueError):
    """A code (agency, dossier, procedure, document) does not follow its format; the message names the part."""

    reason = "CODE_INVALID"
    default_hint = "Correct the code named in the message (formats: see the README, section 'Codes') and resubmit."


class CatalogConflict(DigitizeError):
    """The request does not fit the catalog's state (unknown document, wrong status, code already taken)."""

    reason = "CATALOG_CONFLICT"
    default_hint = "IT staff should look at the document's events in the catalog before retrying."


class ImportFileError(InputError):
    """A whole agencies/register file cannot be read (format, encoding, missing columns)."""

    reason = "IMPORT_INVALID"
    default_hint = "Save the sheet as 'CSV UTF-8' or .xlsx with the documented header row, then import again."


class TimestampUnavailable(TransientError):
    """The timestamp authority, or a CA's OCSP/CRL service needed for PAdES B-LT, did not answer."""

    reason = "TIMESTAMP_UNAVAILABLE"
    default_hint = "Check that the TSA and the CA's OCSP/CRL URLs are reachable; the document will be retried."


class SearchQueryInvalid(DigitizeError, ValueError):
    """A search query or filter cannot be run (empty, too long, a bad date or kind)."""

    reason = "SEARCH_QUERY_INVALID"
    exit_code = 64  # EX_USAGE
    default_hint = 'Type words, codes or "quoted phrases" (up to 32 terms); dates as YYYY-MM-DD.'


class UsageError(DigitizeError, ValueError):
    """A command was asked for something it cannot do as given (e.g. a binary report to the terminal)."""

    reason = "USAGE"
    exit_code = 64  # EX_USAGE
    default_hint = "See the command's --help."


class PdfaInvalid(DigitizeError):
    """The searchable PDF written did not pass PDF/A-2b validation: it is never archived as if it conformed."""

    reason = "PDFA_INVALID"
    default_hint = "IT staff: the message lists the PDF/A findings; convert or rescan the file, then resubmit it."


class ScratchSpaceFull(TransientError):
    """The disk for temporary files is full (ENOSPC/EDQUOT): nothing was archived; retry once space is freed."""

    reason = "SCRATCH_SPACE_FULL"
    default_hint = "Free space on the scratch disk (DIGITIZE_WORK_DIR or the system's temp folder); the run will retry."


class BatchNotFound(UsageError):
    """A run was asked for a batch folder the inbox does not hold, or a backlog source that does not exist."""

    reason = "BATCH_NOT_FOUND"
    default_hint = "Give the name of a folder directly under the inbox (its name only, no path), as listed."
