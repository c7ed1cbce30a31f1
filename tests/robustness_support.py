"""Shared helpers of the robustness tests (bad input, faults, concurrency, security).

Every case records what was observed (status, reason code) through :func:`record`; with
``ROBUSTNESS_OUT=<file.jsonl>`` set (not a ``DIGITIZE_`` name: conftest clears those),
``scripts/robustness_table.py`` renders those lines into ``docs/robustness.md``, so the table is
what the tests saw, not what someone wrote by hand.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from imagegen import render_page
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
AGENCY = "000.00.12.H99"
COLUMNS = ("file", "agency_code", "kind", "title", "issued_date", "document_id", "register_id", "holder_id")
S3_SECRET = "robustness-S3-secret-4b9e"  # moto takes any secret; this one must never show up anywhere
NOOP_OCR = str(REPO / "tests" / "plugins" / "noop_ocr.py")
"""``DIGITIZE_PLUGINS`` value of the no-op OCR engine, for tests where OCR is not the point."""
FAULTS = str(REPO / "tests" / "plugins" / "faults.py")
"""The fault injector plugin (inert until ``DIGITIZE_TEST_FAULT`` names a fault)."""


def record(group: str, case: str, status: str, reason: str | None = None, note: str = "") -> None:
    """Append one observed outcome for docs/robustness.md (only when ROBUSTNESS_OUT names a file)."""
    out = os.environ.get("ROBUSTNESS_OUT")
    if not out:
        return
    line = {"group": group, "case": case, "status": status, "reason": reason or "", "note": note}
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def png(lines: Sequence[str] = ("GIẤY XÁC NHẬN", "Số 1/2024"), *, dpi: int = 200, width_in: float = 3.0,
        height_in: float = 1.5) -> bytes:
    """A small text page as PNG bytes (tiny pages keep OCR, or the no-op engine, fast)."""
    image = render_page(tuple(lines), dpi=dpi, width_in=width_in, height_in=height_in, font_pt=12.0)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", dpi=(dpi, dpi))
    return buffer.getvalue()


def blank_png(*, dpi: int = 200) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((300, 600), 255, dtype=np.uint8)).save(buffer, format="PNG", dpi=(dpi, dpi))
    return buffer.getvalue()


def row(name: str, title: str = "Giấy xác nhận", **extra: str) -> dict[str, str]:
    return {"file": name, "agency_code": AGENCY, "kind": "KQ", "title": title, "issued_date": "2024-03-01", **extra}


def write_batch(inbox: Path, name: str, files: Mapping[str, bytes], rows: Sequence[Mapping[str, str]]) -> Path:
    """A batch folder with ``files`` and a UTF-8 manifest of ``rows`` (missing cells left empty)."""
    batch = inbox / name
    batch.mkdir(parents=True, exist_ok=True)
    for file_name, data in files.items():
        (batch / file_name).parent.mkdir(parents=True, exist_ok=True)
        (batch / file_name).write_bytes(data)
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") for c in COLUMNS})
    (batch / "_READY").touch()
    return batch


def settings_env(settings: Any) -> dict[str, str]:
    """The environment that makes ``load_settings()`` in a child process equal ``settings``."""
    env = {
        "DIGITIZE_CATALOG_URL": settings.catalog_url, "DIGITIZE_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "DIGITIZE_S3_BUCKET": settings.s3_bucket,
        "DIGITIZE_TRUST_ROOTS": os.pathsep.join(str(p) for p in settings.trust_roots),
        "DIGITIZE_SIGNING_LEVEL": settings.signing_level, "DIGITIZE_SIGNING_STAMP": str(settings.signing_stamp),
        "DIGITIZE_OCR_JOBS": str(settings.ocr_jobs), "DIGITIZE_QUIET_SECONDS": "0",
        "DIGITIZE_LEASE_SECONDS": str(settings.lease_seconds), "DIGITIZE_LOW_DPI_ACTION": settings.low_dpi_action,
        "DIGITIZE_MOVE_DONE": str(settings.move_done),
    }
    if settings.tsa_url:
        env["DIGITIZE_TSA_URL"] = settings.tsa_url
    if settings.signing_pkcs12 is not None:
        env.update({"DIGITIZE_SIGNING_PKCS12": str(settings.signing_pkcs12),
                    "DIGITIZE_SIGNING_PASSPHRASE": settings.signing_passphrase or ""})
    if settings.signing_pkcs11_module is not None:
        env.update({"DIGITIZE_SIGNING_PKCS11_MODULE": str(settings.signing_pkcs11_module),
                    "DIGITIZE_SIGNING_PKCS11_TOKEN": settings.signing_pkcs11_token or "",
                    "DIGITIZE_SIGNING_PKCS11_KEY": settings.signing_pkcs11_key or "",
                    "DIGITIZE_SIGNING_PKCS11_PIN": settings.signing_pkcs11_pin or ""})
    return env


def make_context(root: Path, endpoint: str, pki: Any, bucket: str, *, archive: Any = None, **changes: Any) -> Any:
    """A pipeline context on a fresh SQLite catalog (sample agencies imported) and its own bucket."""
    from digitize.config import load_settings
    from digitize.pipeline.stages import PipelineContext

    root.mkdir(parents=True, exist_ok=True)
    values = {"catalog_url": f"sqlite:///{root / 'catalog.db'}", "s3_endpoint_url": endpoint, "s3_bucket": bucket,
              "signing_pkcs12": pki.pkcs12, "signing_passphrase": pki.passphrase, "trust_roots": (pki.root_cert,),
              "signing_stamp": False, "ocr_jobs": 1, "quiet_seconds": 0, **changes}
    settings = dataclasses.replace(load_settings(), **values)
    ctx = PipelineContext(settings, archive=archive)
    ctx.catalog.upgrade()
    ctx.catalog.import_agencies(SAMPLES / "agencies.csv")
    ctx.archive.ensure_bucket()
    return ctx


def register(ctx: Any, batch: Path) -> Any:
    from digitize.intake.manifest import read_manifest
    from digitize.pipeline import register_batch

    return register_batch(ctx.catalog, read_manifest(batch))


CHILD = """
import json, sys
from pathlib import Path
from digitize.pipeline.stages import PipelineContext, process_document
ctx = PipelineContext()
out = [process_document(ctx, int(i), Path(sys.argv[1])).as_dict() for i in sys.argv[2:]]
print(json.dumps(out))
"""


def run_child(settings: Any, batch: Path, ids: Sequence[int], *, extra_env: Mapping[str, str] | None = None,
              wait: bool = True) -> Any:
    """``process_document`` in a separate Python process (a worker that can be killed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    env.update(settings_env(settings))
    env.update(extra_env or {})
    if os.environ.get("DIGITIZE_PLUGINS"):
        env["DIGITIZE_PLUGINS"] = os.environ["DIGITIZE_PLUGINS"]
    cmd = [sys.executable, "-c", CHILD, str(batch), *map(str, ids)]
    if not wait:
        return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def object_versions(archive: Any, prefix: str = "") -> dict[str, int]:
    """Key → number of stored versions (a duplicate upload would show as 2)."""
    counts: dict[str, int] = {}
    paginator = archive.client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=archive.bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts
