"""The sidecar's JSON Schema: the archival description beside each signed PDF, checked when written and audited."""

from __future__ import annotations

import functools
import json
from typing import Any

from digitize.config import REPO_ROOT

SIDECAR_SCHEMA = REPO_ROOT / "schemas" / "sidecar.schema.json"


@functools.cache
def sidecar_validator() -> Any:
    """The sidecar schema's validator, built once: ``jsonschema.validate`` re-checks the schema on every call,
    which cost ~30 ms per document, more than the catalog writes of the whole document."""
    import jsonschema

    schema = json.loads(SIDECAR_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
