"""Preservation: fixity audits, verification for auditors and the API, catalog rebuild, LTA renewal."""

from __future__ import annotations

from digitize.preservation.fixity import (
    FixityReport,
    audit_documents,
    merge_reports,
    publish_report,
    rebuild_catalog,
    render_report,
    select_documents,
)
from digitize.preservation.lta import RenewalOptions, due_for_renewal, renew_due
from digitize.preservation.reference import (
    ReplaySummary,
    archive_reference_snapshot,
    import_reference,
    replay_reference_imports,
)
from digitize.preservation.verification import (
    Verification,
    object_label,
    render_verification,
    verify_code,
    verify_file,
    verify_record,
)

__all__ = [
    "FixityReport",
    "RenewalOptions",
    "ReplaySummary",
    "Verification",
    "archive_reference_snapshot",
    "audit_documents",
    "due_for_renewal",
    "import_reference",
    "merge_reports",
    "object_label",
    "publish_report",
    "rebuild_catalog",
    "render_report",
    "render_verification",
    "renew_due",
    "replay_reference_imports",
    "select_documents",
    "verify_code",
    "verify_file",
    "verify_record",
]
