"""What the archive's safety costs: verified write-once put vs a plain put_object, on moto over loopback.

Run: ``.venv/bin/python -m bench.archive_bench [--repeat N]``; writes nothing, prints a Markdown table
(copied into bench/results/archive.md). Compared, per object size:

- ``plain``: ``put_object`` with botocore defaults (CRC32 checksum computed by botocore), nothing else;
- ``archive``: :meth:`S3Archive.put` (SHA-256 checksum, If-None-Match, read-back and hash);
- ``archive re-run``: the same put again (412, head, read-back): the cost of an idempotent re-run;
- ``upload_fileobj``: boto3's managed transfer (threads, its own multipart) for the large size.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
import uuid
from collections.abc import Callable

from boto3.s3.transfer import TransferConfig

from digitize.archive import ArchiveOptions, S3Archive, make_s3_client
from digitize.archive.s3 import MIB
from digitize.dev.s3server import DUMMY_CREDENTIALS, LocalS3Server


def _median_seconds(action: Callable[[int], object], repeat: int) -> float:
    action(-1)  # warm-up: connection pool, first-request costs
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with LocalS3Server() as server:
        client = make_s3_client(server.endpoint_url, credentials=DUMMY_CREDENTIALS)
        store = S3Archive(client, f"bench-{uuid.uuid4().hex[:12]}", ArchiveOptions())
        store.ensure_bucket()
        for size in (256 * 1024, 4 * MIB, 80 * MIB):
            data = os.urandom(size)
            tag = uuid.uuid4().hex[:8]

            def plain(i: int, data: bytes = data, tag: str = tag) -> None:
                client.put_object(Bucket=store.bucket, Key=f"plain/{tag}/{i}", Body=data)

            def archive(i: int, data: bytes = data, tag: str = tag) -> None:
                store.put(f"archive/{tag}/{i}", data, content_type="application/octet-stream")

            def rerun(i: int, data: bytes = data, tag: str = tag) -> None:
                store.put(f"archive/{tag}/0", data, content_type="application/octet-stream")

            results = {
                "plain put_object": _median_seconds(plain, args.repeat),
                "S3Archive.put": _median_seconds(archive, args.repeat),
                "S3Archive.put re-run": _median_seconds(rerun, args.repeat),
            }
            if size > 64 * MIB:

                def managed(i: int, data: bytes = data, tag: str = tag) -> None:
                    client.upload_fileobj(
                        io.BytesIO(data), store.bucket, f"managed/{tag}/{i}", Config=TransferConfig(max_concurrency=4)
                    )

                results["upload_fileobj"] = _median_seconds(managed, args.repeat)
            base = results["plain put_object"]
            for name, seconds in results.items():
                rows.append(
                    f"| {size / MIB:g} MiB | {name} | {seconds * 1000:.0f} ms | {size / MIB / seconds:.0f} MiB/s "
                    f"| {seconds / base:.2f}× |"
                )
    print(f"repeat={args.repeat}, median per put, moto server on 127.0.0.1\n")
    print("| size | method | time | throughput | vs plain |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
