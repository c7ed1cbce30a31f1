"""Preservation: fixity audits, verification for auditors, catalog rebuild, LTA renewal."""

from __future__ import annotations

from digitize.preservation.fixity import (
    FixityReport,
    audit_documents,
    merge_reports,
    publish_report,
    rebuild_catalog,
    render_report,
    render_verification,
    select_documents,
    verify_code,
    verify_file,
)
from digitize.preservation.lta import RenewalOptions, due_for_renewal, renew_due

__all__ = [
    "FixityReport",
    "RenewalOptions",
    "audit_documents",
    "due_for_renewal",
    "merge_reports",
    "publish_report",
    "rebuild_catalog",
    "render_report",
    "render_verification",
    "renew_due",
    "select_documents",
    "verify_code",
    "verify_file",
]
