"""Uniform codes: agency (QCVN 102:2016), dossier (Circular 01/2018), procedure and document codes; cover sheet ids.

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
from digitize.codes.sheets import SHEET_ID_PREFIX, parse_sheet_id, sheet_id_for

__all__ = [
    "DEFAULT_CODE_TEMPLATE",
    "DOCUMENT_KINDS",
    "SHEET_ID_PREFIX",
    "format_document_code",
    "parse_agency_code",
    "parse_document_code",
    "parse_dossier_code",
    "parse_procedure_code",
    "parse_sheet_id",
    "sheet_id_for",
    "validate_template",
]
