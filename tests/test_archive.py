"""The archive against a real moto S3 server over HTTP on 127.0.0.1, and the folder backend.

Faults (503s, corrupted uploads, 403) come from a tiny HTTP proxy on loopback placed between
botocore and moto, so retries and read-back verification are exercised over real sockets.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import stat
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from botocore.exceptions import ClientError

from digitize.archive import ArchiveOptions, S3Archive, document_keys, make_s3_client, open_archive
from digitize.archive.folder import LocalArchive
from digitize.archive.keys import kind_from_key
from digitize.archive.objects import StoredObject
from digitize.archive.s3 import MIB
from digitize.config import load_settings
from digitize.dev.s3server import DUMMY_CREDENTIALS, LocalS3Server
from digitize.errors import (
    ArchiveIntegrityError,
    ArchiveNotFound,
    ArchiveRejected,
    ArchiveUnavailable,
    ConfigurationError,
    TransientError,
)

CODE = "000.00.00.H49.2021.KQ.000123"
KEYS = document_keys(CODE)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3Server]:
    with LocalS3Server() as server:
        yield server


def _client(endpoint: str, *, max_attempts: int = 3) -> Any:
    return make_s3_client(
        endpoint, credentials=DUMMY_CREDENTIALS, max_attempts=max_attempts, connect_timeout=2, read_timeout=10
    )


def _bucket() -> str:
    return f"test-{uuid.uuid4().hex[:20]}"  # moto's backend is shared by every server in the process


@pytest.fixture
def archive(s3_server: LocalS3Server) -> S3Archive:
    store = S3Archive(_client(s3_server.endpoint_url), _bucket())
    store.ensure_bucket()
    return store


def _versions(store: S3Archive, key: str) -> list[dict[str, Any]]:
    listing = store.client.list_object_versions(Bucket=store.bucket, Prefix=key)
    return [v for v in listing.get("Versions", []) if v["Key"] == key]


class FaultProxy:
    """HTTP proxy on 127.0.0.1 that answers the first ``faults`` matching requests itself, then forwards.

    ``status``/``code`` shape the injected S3 error; ``corrupt`` is how many of the first forwarded PUT
    bodies get one byte flipped (same length), as a bad NIC or a broken middlebox would.
    """

    def __init__(
        self,
        upstream: str,
        *,
        faults: int = 0,
        status: int = 503,
        code: str = "ServiceUnavailable",
        methods: tuple[str, ...] = ("PUT",),
        corrupt: int = 0,
    ) -> None:
        self.upstream = urlparse(upstream)
        self.faults_left = faults
        self.faults_served = 0
        self.status, self.code, self.methods, self.corrupt = status, code, methods, corrupt
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" at once, as S3 does

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._take_fault(self.command):
                    payload = f"<Error><Code>{proxy.code}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                if self.command == "PUT" and body and proxy._take_corruption():
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                upstream = http.client.HTTPConnection(proxy.upstream.netloc, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host", "expect")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _take_fault(self, method: str) -> bool:
        with self.lock:
            if method in self.methods and self.faults_left > 0:
                self.faults_left -= 1
                self.faults_served += 1
                return True
            return False

    def _take_corruption(self) -> bool:
        with self.lock:
            if self.corrupt > 0:
                self.corrupt -= 1
                return True
            return False

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- put / read-back


def test_put_reads_back_and_records_the_checksum(archive: S3Archive) -> None:
    stored = archive.put(KEYS.pdf, PDF, content_type="application/pdf", metadata={"code": CODE})
    digest = hashlib.sha256(PDF).hexdigest()
    assert stored == archive.head(KEYS.pdf)
    assert stored.key == KEYS.pdf and stored.size == len(PDF) and stored.sha256 == digest
    assert stored.version_id
    assert stored.checksum_sha256 == base64.b64encode(hashlib.sha256(PDF).digest()).decode()
    assert stored.content_type == "application/pdf" and stored.metadata == {"code": CODE}
    raw = archive.client.head_object(Bucket=archive.bucket, Key=KEYS.pdf, ChecksumMode="ENABLED")
    assert raw["Metadata"]["sha256"] == digest
    assert raw["ChecksumSHA256"] == stored.checksum_sha256
    assert archive.get(KEYS.pdf) == PDF


def test_second_put_of_the_same_bytes_is_idempotent(archive: S3Archive) -> None:
    first = archive.put(KEYS.pdf, PDF, content_type="application/pdf")
    again = archive.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert again.version_id == first.version_id
    assert again.sha256 == first.sha256
    assert len(_versions(archive, KEYS.pdf)) == 1


def test_different_bytes_under_the_same_key_are_refused_and_the_original_kept(archive: S3Archive) -> None:
    first = archive.put(KEYS.pdf, PDF, content_type="application/pdf")
    with pytest.raises(ArchiveIntegrityError) as caught:
        archive.put(KEYS.pdf, PDF + b"tampered", content_type="application/pdf")
    assert caught.value.reason == "ARCHIVE_INTEGRITY"
    assert archive.get(KEYS.pdf) == PDF
    assert [v["VersionId"] for v in _versions(archive, KEYS.pdf)] == [first.version_id]


def test_vietnamese_metadata_round_trips_exactly(archive: S3Archive) -> None:
    metadata = {
        "title": "Giấy chứng nhận quyền sử dụng đất — Ủy ban nhân dân xã Tân Phước",
        "agency": "UBND huyện Chợ Gạo, tỉnh Tiền Giang",
        "tricky": " 100% %41 \"quoted\"\nnext line ",
    }
    stored = archive.put(KEYS.sidecar, b"{}", content_type="application/json", metadata=metadata)
    assert stored.metadata == metadata
    assert archive.head(KEYS.sidecar) == stored
    raw = archive.client.head_object(Bucket=archive.bucket, Key=KEYS.sidecar)["Metadata"]
    assert all(value.isascii() for value in raw.values())


def test_expected_sha256_in_metadata_must_match_the_bytes(archive: S3Archive) -> None:
    key = KEYS.original(1, ".tif")
    good = hashlib.sha256(b"scan").hexdigest()
    with pytest.raises(ArchiveIntegrityError):
        archive.put(key, b"scan, changed since registration", content_type="image/tiff", metadata={"sha256": good})
    assert archive.head(key) is None
    assert archive.put(key, b"scan", content_type="image/tiff", metadata={"sha256": good}).sha256 == good


def test_get_and_head_of_a_missing_key(archive: S3Archive) -> None:
    assert archive.head("documents/none.pdf") is None
    with pytest.raises(ArchiveNotFound):
        archive.get("documents/none.pdf")


def test_get_refuses_content_that_differs_from_its_recorded_sha256(archive: S3Archive) -> None:
    archive.client.put_object(
        Bucket=archive.bucket, Key="documents/forged.pdf", Body=b"forged", Metadata={"sha256": "0" * 64}
    )
    with pytest.raises(ArchiveIntegrityError):
        archive.get("documents/forged.pdf")


def test_verify_audits_the_stored_bytes(archive: S3Archive) -> None:
    stored = archive.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert archive.verify(KEYS.pdf) == stored
    assert archive.verify(KEYS.pdf, stored.sha256.upper()) == stored
    with pytest.raises(ArchiveIntegrityError):
        archive.verify(KEYS.pdf, hashlib.sha256(b"what the catalog says").hexdigest())
    archive.client.put_object(
        Bucket=archive.bucket, Key="documents/forged.pdf", Body=b"forged", Metadata={"sha256": "0" * 64}
    )
    with pytest.raises(ArchiveIntegrityError):
        archive.verify("documents/forged.pdf")
    with pytest.raises(ArchiveNotFound):
        archive.verify(KEYS.sidecar)


def test_list_keys_under_a_prefix(archive: S3Archive) -> None:
    other = document_keys("000.00.00.H49.2021.TP.000001")
    for key in (KEYS.pdf, KEYS.sidecar, KEYS.original(1, ".jpg"), other.pdf):
        archive.put(key, key.encode(), content_type="application/octet-stream")
    assert sorted(archive.list_keys(KEYS.originals_prefix)) == [KEYS.original(1, ".jpg")]
    assert sorted(archive.list_keys("documents/000.00.00.H49/2021/")) == sorted(
        [KEYS.pdf, KEYS.sidecar, KEYS.original(1, ".jpg"), other.pdf]
    )


def test_put_rejects_unsafe_keys_before_sending(archive: S3Archive) -> None:
    for key in ("../escape.pdf", "documents//x.pdf", "/abs.pdf", "documents/.hidden", "documents/a b.pdf", ""):
        with pytest.raises(ValueError):
            archive.put(key, b"x", content_type="application/pdf")
    with pytest.raises(ValueError):
        archive.put(KEYS.pdf, b"x", content_type="application/pdf", metadata={"Tiêu đề": "x"})


# --------------------------------------------------------------------------- keys


def test_document_keys_layout() -> None:
    base = f"documents/000.00.00.H49/2021/{CODE}/v1/"
    assert KEYS.pdf == f"{base}{CODE}.pdf"
    assert KEYS.sidecar == f"{base}{CODE}.json"
    assert KEYS.originals_prefix == f"{base}originals/"
    assert KEYS.original(1, ".TIF") == f"{base}originals/01.tif"
    assert KEYS.original(123, ".pdf") == f"{base}originals/123.pdf"
    assert document_keys(CODE, 3).pdf == f"documents/000.00.00.H49/2021/{CODE}/v3/{CODE}.pdf"
    assert document_keys("H49-KQ-2021-7").pdf == "documents/_custom/H49-KQ-2021-7/v1/H49-KQ-2021-7.pdf"
    assert kind_from_key(KEYS.original(1, ".tif")) == "KQ"
    assert kind_from_key(document_keys("H49-KQ-2021-7").pdf) is None


@pytest.mark.parametrize(
    "code",
    [
        "",
        "../000.00.00.H49.2021.KQ.000123",
        "000.00.00.H49/../../etc",
        "000.00.00.H49.2021.KQ.000123/x",
        ".000.00.00.H49.2021.KQ.000123",
        "000.00.00.H49..2021",
        "000.00.00.H49.2021.KQ.000123\x00",
        "000.00.00.H49.2021.KQ.000123\n",
        "000.00.00.H49 2021",
        "Hồ sơ",
        "a\\b",
        "x" * 201,
    ],
)
def test_document_keys_reject_path_tricks(code: str) -> None:
    with pytest.raises(ValueError):
        document_keys(code)


@pytest.mark.parametrize(("position", "extension"), [(-1, ".tif"), (1, "tif"), (1, "./x"), (1, ".t/f"), (1, ".")])
def test_original_key_rejects_bad_parts(position: int, extension: str) -> None:
    with pytest.raises(ValueError):
        KEYS.original(position, extension)


@pytest.mark.parametrize("version", [0, -1, True])
def test_document_keys_reject_bad_versions(version: int) -> None:
    with pytest.raises(ValueError):
        document_keys(CODE, version)


# --------------------------------------------------------------------------- failures of the service


def test_endpoint_down_is_transient() -> None:
    store = S3Archive(_client(f"http://127.0.0.1:{_free_port()}", max_attempts=2), _bucket())
    with pytest.raises(ArchiveUnavailable) as caught:
        store.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert isinstance(caught.value, TransientError)
    with pytest.raises(ArchiveUnavailable):
        store.ensure_bucket()
    with pytest.raises(ArchiveUnavailable):
        store.head(KEYS.pdf)


def test_stopped_server_is_transient() -> None:
    server = LocalS3Server().start()
    store = S3Archive(_client(server.endpoint_url, max_attempts=2), _bucket())
    store.ensure_bucket()
    server.stop()
    with pytest.raises(ArchiveUnavailable):
        store.put(KEYS.pdf, PDF, content_type="application/pdf")


def test_put_succeeds_after_a_few_503s(archive: S3Archive, s3_server: LocalS3Server) -> None:
    with FaultProxy(s3_server.endpoint_url, faults=2) as proxy:
        via_proxy = S3Archive(_client(proxy.endpoint_url, max_attempts=5), archive.bucket)
        stored = via_proxy.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert proxy.faults_served == 2
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert archive.get(KEYS.pdf) == PDF


def test_persistent_503s_are_transient(archive: S3Archive, s3_server: LocalS3Server) -> None:
    with FaultProxy(s3_server.endpoint_url, faults=100, code="SlowDown") as proxy:
        via_proxy = S3Archive(_client(proxy.endpoint_url, max_attempts=2), archive.bucket)
        with pytest.raises(ArchiveUnavailable):
            via_proxy.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert proxy.faults_served == 2  # botocore retried once, then gave up
    assert archive.head(KEYS.pdf) is None


def test_access_denied_is_permanent(archive: S3Archive, s3_server: LocalS3Server) -> None:
    with FaultProxy(s3_server.endpoint_url, faults=100, status=403, code="AccessDenied") as proxy:
        via_proxy = S3Archive(_client(proxy.endpoint_url, max_attempts=5), archive.bucket)
        with pytest.raises(ArchiveRejected) as caught:
            via_proxy.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert proxy.faults_served == 1  # not retried
    assert not isinstance(caught.value, TransientError)
    assert "AccessDenied" in str(caught.value)


def test_missing_bucket_is_permanent(s3_server: LocalS3Server) -> None:
    store = S3Archive(_client(s3_server.endpoint_url), _bucket())
    with pytest.raises(ArchiveRejected, match="bucket does not exist"):
        store.put(KEYS.pdf, PDF, content_type="application/pdf")


def test_corruption_in_transit_is_caught_by_read_back_and_the_bad_version_deleted(
    archive: S3Archive, s3_server: LocalS3Server
) -> None:
    with FaultProxy(s3_server.endpoint_url, corrupt=1) as proxy:
        via_proxy = S3Archive(_client(proxy.endpoint_url), archive.bucket)
        with pytest.raises(ArchiveIntegrityError, match="deleted"):
            via_proxy.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert archive.head(KEYS.pdf) is None
    assert _versions(archive, KEYS.pdf) == []
    assert archive.put(KEYS.pdf, PDF, content_type="application/pdf").sha256 == hashlib.sha256(PDF).hexdigest()


# --------------------------------------------------------------------------- multipart


def test_large_objects_go_up_in_parts_with_checksums(s3_server: LocalS3Server) -> None:
    options = ArchiveOptions(multipart_threshold=6 * MIB, part_size=5 * MIB)
    store = S3Archive(_client(s3_server.endpoint_url), _bucket(), options)
    store.ensure_bucket()
    data = hashlib.sha256(b"seed").digest() * (11 * MIB // 32 + 7)  # 11 MiB and a bit: 3 parts
    stored = store.put(KEYS.pdf, data, content_type="application/pdf", metadata={"title": "Tờ trình"})
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    assert stored.checksum_sha256 is not None and stored.checksum_sha256.endswith("-3")
    assert stored.metadata == {"title": "Tờ trình"}
    assert store.get(KEYS.pdf) == data
    assert store.put(KEYS.pdf, data, content_type="application/pdf").version_id == stored.version_id
    with pytest.raises(ArchiveIntegrityError):
        store.put(KEYS.pdf, data[:-1] + b"!", content_type="application/pdf")
    assert len(_versions(store, KEYS.pdf)) == 1
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


# --------------------------------------------------------------------------- Object Lock, SSE, presigned URLs


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_object_lock_retention_per_kind_and_delete_refused(s3_server: LocalS3Server, mode: str) -> None:
    options = ArchiveOptions(object_lock_mode=mode, retention_days={"KQ": 30, "TP": 2}, default_retention_days=1)
    store = S3Archive(_client(s3_server.endpoint_url), _bucket(), options)
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    before = datetime.now(UTC)
    stored = store.put(KEYS.pdf, PDF, content_type="application/pdf")
    tp = store.put(document_keys("000.00.00.H49.2021.TP.000001").pdf, PDF, content_type="application/pdf")
    other = store.put("reports/summary.json", b"{}", content_type="application/json")
    assert stored.lock_mode == mode and stored.retain_until is not None
    assert timedelta(days=30) <= stored.retain_until - before < timedelta(days=30, minutes=5)
    assert tp.retain_until is not None and timedelta(days=2) <= tp.retain_until - before < timedelta(days=2, hours=1)
    assert other.retain_until is not None and other.retain_until - before < timedelta(days=1, hours=1)
    with pytest.raises(ClientError) as refused:
        store.client.delete_object(Bucket=store.bucket, Key=KEYS.pdf, VersionId=stored.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert store.get(KEYS.pdf) == PDF


def test_object_lock_without_retention_for_the_kind_is_a_configuration_error(s3_server: LocalS3Server) -> None:
    options = ArchiveOptions(object_lock_mode="COMPLIANCE", retention_days={"KQ": 30})
    store = S3Archive(_client(s3_server.endpoint_url), _bucket(), options)
    store.ensure_bucket()
    with pytest.raises(ConfigurationError):
        store.put(document_keys("000.00.00.H49.2021.TP.000001").pdf, PDF, content_type="application/pdf")


def test_object_lock_on_a_bucket_created_without_it_is_rejected(archive: S3Archive) -> None:
    locked = S3Archive(archive.client, archive.bucket, ArchiveOptions(object_lock_mode="COMPLIANCE"))
    with pytest.raises(ArchiveRejected, match="without Object Lock"):
        locked.ensure_bucket()


def test_server_side_encryption_is_requested(s3_server: LocalS3Server) -> None:
    store = S3Archive(_client(s3_server.endpoint_url), _bucket(), ArchiveOptions(server_side_encryption="AES256"))
    store.ensure_bucket()
    store.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert store.client.head_object(Bucket=store.bucket, Key=KEYS.pdf)["ServerSideEncryption"] == "AES256"


def test_presigned_url_lets_an_auditor_download_without_credentials(archive: S3Archive) -> None:
    stored = archive.put(KEYS.pdf, PDF, content_type="application/pdf")
    url = archive.presigned_url(KEYS.pdf, expires_in=300, version_id=stored.version_id)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == PDF
    with pytest.raises(ValueError):
        archive.presigned_url(KEYS.pdf, expires_in=8 * 24 * 3600)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ArchiveOptions()),
        (
            {
                "DIGITIZE_S3_OBJECT_LOCK_MODE": "compliance",
                "DIGITIZE_S3_RETENTION_DAYS": "KQ=36500, TP=3650, *=365",
                "DIGITIZE_S3_SSE": "AES256",
                "DIGITIZE_S3_MULTIPART_THRESHOLD_MB": "128",
            },
            ArchiveOptions(
                object_lock_mode="COMPLIANCE",
                retention_days={"KQ": 36500, "TP": 3650},
                default_retention_days=365,
                server_side_encryption="AES256",
                multipart_threshold=128 * MIB,
            ),
        ),
    ],
)
def test_options_from_environment(env: dict[str, str], expected: ArchiveOptions) -> None:
    assert ArchiveOptions.from_env(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"DIGITIZE_S3_OBJECT_LOCK_MODE": "FOREVER"},
        {"DIGITIZE_S3_RETENTION_DAYS": "KQ"},
        {"DIGITIZE_S3_RETENTION_DAYS": "KQ=0"},
        {"DIGITIZE_S3_SSE": "rot13"},
        {"DIGITIZE_S3_MULTIPART_THRESHOLD_MB": "lots"},
    ],
)
def test_bad_options_are_configuration_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        ArchiveOptions.from_env(env)


def test_from_settings_talks_to_the_configured_endpoint(
    s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket()
    monkeypatch.setenv("DIGITIZE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("DIGITIZE_S3_BUCKET", bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS[1])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    store = open_archive(load_settings())
    assert isinstance(store, S3Archive) and store.bucket == bucket
    assert store.client.meta.config.s3["addressing_style"] == "path"
    assert store.client.meta.config.retries["mode"] == "standard"
    store.ensure_bucket()
    assert store.put(KEYS.pdf, PDF, content_type="application/pdf").size == len(PDF)
    assert "testing" not in repr(store)


# --------------------------------------------------------------------------- folder backend


@pytest.fixture
def folder(tmp_path: Path) -> LocalArchive:
    store = open_archive((tmp_path / "archive").as_uri())
    assert isinstance(store, LocalArchive)
    store.ensure_bucket()
    return store


def test_folder_archive_put_get_head_and_idempotence(folder: LocalArchive) -> None:
    metadata = {"title": "Quyết định về việc cấp giấy phép"}
    stored = folder.put(KEYS.pdf, PDF, content_type="application/pdf", metadata=metadata)
    assert stored == StoredObject(
        key=KEYS.pdf,
        sha256=hashlib.sha256(PDF).hexdigest(),
        size=len(PDF),
        version_id=None,
        checksum_sha256=base64.b64encode(hashlib.sha256(PDF).digest()).decode(),
        content_type="application/pdf",
        metadata=metadata,
    )
    assert folder.get(KEYS.pdf) == PDF and folder.head(KEYS.pdf) == stored == folder.verify(KEYS.pdf)
    assert folder.put(KEYS.pdf, PDF, content_type="application/pdf", metadata=metadata) == stored
    path = folder.root / KEYS.pdf
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    with pytest.raises(ArchiveIntegrityError):
        folder.put(KEYS.pdf, PDF + b"x", content_type="application/pdf")
    assert folder.get(KEYS.pdf) == PDF
    assert list(folder.list_keys("documents/")) == [KEYS.pdf]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    assert folder.presigned_url(KEYS.pdf) == path.resolve().as_uri()


def test_folder_archive_detects_tampering_and_missing_objects(folder: LocalArchive) -> None:
    folder.put(KEYS.pdf, PDF, content_type="application/pdf")
    path = folder.root / KEYS.pdf
    path.chmod(0o644)
    path.write_bytes(PDF[:-1])
    with pytest.raises(ArchiveIntegrityError):
        folder.get(KEYS.pdf)
    with pytest.raises(ArchiveIntegrityError):
        folder.verify(KEYS.pdf)
    with pytest.raises(ArchiveIntegrityError):
        folder.put(KEYS.pdf, PDF, content_type="application/pdf")
    with pytest.raises(ArchiveNotFound):
        folder.get(KEYS.sidecar)
    assert folder.head(KEYS.sidecar) is None


@pytest.mark.parametrize("key", ["../outside.pdf", "documents/../../x", ".meta/x.json", "/etc/passwd", "a//b"])
def test_folder_archive_stays_inside_its_root(folder: LocalArchive, key: str) -> None:
    with pytest.raises(ValueError):
        folder.put(key, b"x", content_type="text/plain")
    with pytest.raises(ValueError):
        folder.get(key)
    assert not (folder.root.parent / "outside.pdf").exists()


def test_folder_archive_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DIGITIZE_ARCHIVE_URL picks the backend; unset, the archive is S3 with DIGITIZE_S3_BUCKET as before."""
    from digitize.pipeline import PipelineContext

    monkeypatch.setenv("DIGITIZE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DIGITIZE_S3_BUCKET", "legacy-bucket")
    store = open_archive(load_settings())
    assert isinstance(store, S3Archive) and store.bucket == "legacy-bucket"
    monkeypatch.setenv("DIGITIZE_ARCHIVE_URL", "s3://other-bucket")
    store = open_archive(load_settings())
    assert isinstance(store, S3Archive) and store.bucket == "other-bucket"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("DIGITIZE_ARCHIVE_URL", (tmp_path / "a").as_uri())
    for store in (open_archive(load_settings()), PipelineContext(load_settings()).archive):
        assert isinstance(store, LocalArchive) and store.root == tmp_path / "a"


@pytest.mark.parametrize("url", ["file://var/archive", "file:relative/path", "s3://", "/abs/without/scheme",
                                 "http://127.0.0.1:9010/bucket"])
def test_bad_archive_urls_are_configuration_errors(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITIZE_ARCHIVE_URL", url)
    with pytest.raises(ConfigurationError) as err:
        open_archive(load_settings())
    assert "DIGITIZE_ARCHIVE_URL" in str(err.value)


@pytest.mark.parametrize("name, value", [("DIGITIZE_S3_OBJECT_LOCK_MODE", "COMPLIANCE"), ("DIGITIZE_S3_SSE", "AES256"),
                                         ("DIGITIZE_S3_RETENTION_DAYS", "KQ=36500")])
def test_folder_archive_refuses_s3_only_settings(name: str, value: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Object Lock and SSE are S3's: asking for them on a folder must stop the run, not be ignored."""
    monkeypatch.setenv("DIGITIZE_ARCHIVE_URL", (tmp_path / "a").as_uri())
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as err:
        open_archive(load_settings())
    assert name in str(err.value) and "folder" in str(err.value)


def test_folder_archive_survives_a_restart_and_never_overwrites(folder: LocalArchive) -> None:
    """A new LocalArchive on the same folder (a new process, after a reboot) sees every object as it was."""
    metadata = {"code": CODE, "title": "Giấy chứng nhận kết hôn"}
    first = folder.put(KEYS.pdf, PDF, content_type="application/pdf", metadata=metadata)
    sidecar = folder.put(KEYS.sidecar, b'{"code": "x"}', content_type="application/json")
    again = LocalArchive(folder.root)
    again.ensure_bucket()
    assert sorted(again.list_keys("")) == sorted([KEYS.pdf, KEYS.sidecar])
    assert list(again.list_keys("documents/000.00.00.H49/2021/000.00.00.H49.2021.KQ.0001")) == sorted(
        [KEYS.pdf, KEYS.sidecar])  # a prefix may end inside a name, as on S3
    assert list(again.list_keys("documents/000.00.00.H49/2021/000.00.00.H49.2021.KQ.000124")) == []
    assert list(again.list_keys("documents/000.00.00.H50/")) == []
    assert again.head(KEYS.pdf) == first and again.verify(KEYS.pdf, first.sha256) == first
    assert again.get(KEYS.pdf) == PDF and again.head(KEYS.sidecar) == sidecar
    with pytest.raises(ArchiveIntegrityError):
        again.put(KEYS.pdf, PDF.replace(b"%%EOF", b"%%EOX"), content_type="application/pdf", metadata=metadata)
    assert again.get(KEYS.pdf) == PDF and folder.head(KEYS.pdf) == first
    assert again.location(KEYS.pdf) == str(folder.root / KEYS.pdf)


def test_folder_archive_deletes_staged_work_only(folder: LocalArchive) -> None:
    """Staged work goes once its document is archived (as on S3); the archive proper stays write-once."""
    from digitize.archive import staging_keys

    staged = staging_keys(CODE, 1)
    folder.put(staged.pdf, PDF, content_type="application/pdf")
    folder.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert folder.delete(staged.pdf) == 1
    assert folder.head(staged.pdf) is None and list(folder.list_keys("staging/")) == []
    assert folder.delete(staged.pdf) == 0  # already gone: nothing to do
    folder.put(staged.pdf, PDF + b"another attempt", content_type="application/pdf")  # prepared again
    assert folder.get(staged.pdf) == PDF + b"another attempt"
    with pytest.raises(ValueError):
        folder.delete(KEYS.pdf)
    assert folder.get(KEYS.pdf) == PDF


def test_open_archive_rejects_unknown_urls() -> None:
    with pytest.raises(ConfigurationError):
        open_archive("ftp://example.org/archive")


def _race(put: Callable[..., StoredObject]) -> list[StoredObject]:
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(put, KEYS.sidecar, b'{"a": 1}', content_type="application/json") for _ in range(4)]
        return [future.result() for future in futures]


def test_concurrent_puts_of_one_key_store_exactly_one_object(archive: S3Archive, folder: LocalArchive) -> None:
    """Workers racing on the same key all succeed (same bytes), and exactly one version exists."""
    for store in (archive, folder):
        results = _race(store.put)
        assert len(results) == 4 and len({(r.version_id, r.sha256) for r in results}) == 1
    assert len(_versions(archive, KEYS.sidecar)) == 1


# --------------------------------------------------------------------------- staging lifecycle


def _rules(store: S3Archive) -> list[dict[str, Any]]:
    try:
        return list(store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"])
    except ClientError:
        return []


def test_ensure_bucket_expires_staging_and_keeps_the_operators_rules(s3_server: LocalS3Server) -> None:
    from digitize.archive.s3 import STAGING_RULE_ID

    client = _client(s3_server.endpoint_url)
    bucket = _bucket()
    S3Archive(client, bucket, ArchiveOptions(staging_expiry_days=0)).ensure_bucket()
    assert _rules(S3Archive(client, bucket)) == [], "0 must leave the lifecycle alone"
    theirs = {"ID": "operators-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 7}}
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]})

    store = S3Archive(client, bucket, ArchiveOptions(staging_expiry_days=30))
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent: no second rule
    rules = {r["ID"]: r for r in _rules(store)}
    assert set(rules) == {"operators-logs", STAGING_RULE_ID}
    assert rules["operators-logs"]["Expiration"] == {"Days": 7}
    ours = rules[STAGING_RULE_ID]
    assert ours["Filter"] == {"Prefix": "staging/"} and ours["Expiration"] == {"Days": 30}
    assert ours["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1  # versioned bucket: old versions too

    S3Archive(client, bucket, ArchiveOptions(staging_expiry_days=10)).ensure_bucket()
    rules = {r["ID"]: r for r in _rules(store)}
    assert len(rules) == 2 and rules[STAGING_RULE_ID]["Expiration"] == {"Days": 10}


def test_no_permission_for_the_lifecycle_warns_and_the_archive_still_works(
        s3_server: LocalS3Server, caplog: pytest.LogCaptureFixture) -> None:
    bucket = _bucket()
    S3Archive(_client(s3_server.endpoint_url), bucket, ArchiveOptions(staging_expiry_days=0)).ensure_bucket()
    # The bucket exists and is versioned, so the only PUT left in ensure_bucket is the lifecycle's.
    with FaultProxy(s3_server.endpoint_url, faults=1, status=403, code="AccessDenied") as proxy:
        store = S3Archive(_client(proxy.endpoint_url, max_attempts=1), bucket, ArchiveOptions(staging_expiry_days=30))
        with caplog.at_level("WARNING", logger="digitize.archive.s3"):
            store.ensure_bucket()
        assert proxy.faults_served == 1
        assert store.put("staging/x/v1/a.json", b"{}", content_type="application/json").key == "staging/x/v1/a.json"
    assert "set it by hand" in caplog.text and "AccessDenied" in caplog.text
    assert _rules(S3Archive(_client(s3_server.endpoint_url), bucket)) == []


def test_staging_expiry_days_from_the_environment() -> None:
    assert ArchiveOptions.from_env({}).staging_expiry_days == 30
    assert ArchiveOptions.from_env({"DIGITIZE_S3_STAGING_EXPIRY_DAYS": "0"}).staging_expiry_days == 0
    with pytest.raises(ConfigurationError, match="STAGING_EXPIRY_DAYS"):
        ArchiveOptions.from_env({"DIGITIZE_S3_STAGING_EXPIRY_DAYS": "a week"})


def test_object_lock_works_with_a_client_built_elsewhere(s3_server: LocalS3Server) -> None:
    """Airflow's Amazon provider builds its own boto3 client (a connection with extras): the locked copy
    still carries what moto and S3 ask of a put with retention."""
    import boto3

    plain = boto3.session.Session().client(
        "s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1",
        aws_access_key_id=DUMMY_CREDENTIALS[0], aws_secret_access_key=DUMMY_CREDENTIALS[1])
    store = S3Archive(plain, _bucket(), ArchiveOptions(object_lock_mode="COMPLIANCE", default_retention_days=1))
    store.ensure_bucket()
    stored = store.put(KEYS.pdf, PDF, content_type="application/pdf")
    assert stored.lock_mode == "COMPLIANCE" and store.get(KEYS.pdf) == PDF
    # a second archive on the same client registers nothing twice, and a re-run is idempotent
    S3Archive(plain, store.bucket, store.options).put(KEYS.pdf, PDF, content_type="application/pdf")
