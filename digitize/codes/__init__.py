"""Uniform codes: agency (QCVN 102:2016), dossier (Circular 01/2018), procedure and document codes.

Parsing and validation are strict; allocation of document codes is the catalog's.
"""

from __future__ import annotations

from digitize.codes.formats import (
    DEFAULT_CODE_TEMPLATE,
    DOCUMENT_KINDS,
    format_document_code,
    parse_agency_code,
    parse_document_code,
    parse_dossier_code,
    parse_procedure_code,
    validate_template,
)

__all__ = [
    "DEFAULT_CODE_TEMPLATE",
    "DOCUMENT_KINDS",
    "format_document_code",
    "parse_agency_code",
    "parse_document_code",
    "parse_dossier_code",
    "parse_procedure_code",
    "validate_template",
]
