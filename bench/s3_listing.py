"""What dropping kept OCR by listing costs the S3 endpoint as the bucket fills (issue #19).

Three batches of the benchmark's 22 files (made distinct per batch) go into one bucket with no-op OCR;
the S3 endpoint (moto) runs in its own process and its CPU is read per batch. ``--listing`` restores the
old behaviour (every archived document lists the versions of its two OCR-cache keys) for comparison.

    .venv/bin/python -m bench.s3_listing            # as the pipeline does now: one HEAD per document
    .venv/bin/python -m bench.s3_listing --listing  # as it did before
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from bench.corpus import DEFAULT_CORPUS
from bench.pipeline import REPO, make_batch

SERVER = ("import sys, time\nfrom digitize.dev.s3server import LocalS3Server\n"
          "s = LocalS3Server().start(); print(s.endpoint_url, flush=True); time.sleep(3600)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listing", action="store_true", help="drop the OCR cache by listing, as before")
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    from digitize.signing import create_demo_pki

    work = Path(tempfile.mkdtemp(prefix="s3-listing-"))
    pki = create_demo_pki(work / "pki", agency_name="Ủy ban nhân dân tỉnh Mẫu", key_type="ec-p256")
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert server.stdout is not None
        for key in [k for k in os.environ if k.startswith("DIGITIZE_")]:  # e.g. a developer's .env: its archive
            del os.environ[key]
        os.environ.update({"DIGITIZE_CATALOG_URL": f"sqlite:///{work}/catalog.db",
                           "DIGITIZE_S3_ENDPOINT_URL": server.stdout.readline().strip(),
                           "DIGITIZE_S3_BUCKET": "listing", "DIGITIZE_SIGNING_PKCS12": str(pki.pkcs12),
                           "DIGITIZE_SIGNING_PASSPHRASE": pki.passphrase, "DIGITIZE_TRUST_ROOTS": str(pki.root_cert),
                           "DIGITIZE_WORK_DIR": str(work), "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                           "DIGITIZE_PLUGINS": str(REPO / "tests" / "plugins" / "noop_ocr.py")})
        from digitize import match
        from digitize.archive import ocr_cache_keys
        from digitize.catalog import fingerprint_of
        from digitize.intake import LocalBatch, read_manifest
        from digitize.pipeline import PipelineContext, process_document, register_batch

        if args.listing:
            def drop_by_listing(archive: Any, digests: list[str]) -> None:
                keys = ocr_cache_keys(fingerprint_of(list(digests)))
                for key in (keys.state, keys.pdf):
                    archive.delete(key)
            match.forget_ocr = drop_by_listing
        ctx = PipelineContext()
        ctx.catalog.upgrade()
        ctx.catalog.import_agencies(REPO / "samples" / "agencies.csv")
        ctx.archive.ensure_bucket()
        template = work / "template"
        make_batch(template, DEFAULT_CORPUS, 12)
        endpoint = psutil.Process(server.pid)
        for number in range(args.batches):
            batch = work / f"batch-{number}"
            shutil.copytree(template, batch)
            for f in batch.iterdir():
                if f.name != "manifest.csv":
                    with f.open("ab") as out:  # trailing bytes: a new original, the same pages
                        out.write(str(number).encode())
            registered = register_batch(ctx.catalog, read_manifest(batch))
            before = endpoint.cpu_times()
            for document_id in registered.to_process:
                assert process_document(ctx, document_id, LocalBatch(batch)).status == "ARCHIVED"
            after = endpoint.cpu_times()
            used = after.user + after.system - before.user - before.system
            print(f"batch {number + 1}: {len(registered.to_process)} documents, S3 endpoint {used:.1f} s of CPU"
                  + (" (listing)" if args.listing else ""), flush=True)
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
