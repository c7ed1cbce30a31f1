"""Reuse API over real HTTP: uvicorn on 127.0.0.1, httpx, a real SQLite catalog, signed PDFs in moto's S3 server.

Authentication, purposes and the access log, every endpoint, the Airflow plugin's mount, and a bounded
schemathesis run against the OpenAPI description (bad input must get a 4xx, never a 500).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from robustness_support import record
from test_search import BIRTH, LAND, LAND_P2, LAND_P3, MARRIAGE, archive_record, archive_signed, s3_archive, signer

from digitize import api, search
from digitize.api import auth
from digitize.catalog import reuse
from digitize.catalog.store import Catalog

REPO = Path(__file__).resolve().parent.parent
H1, H2 = "079070001234", "079219000001"
GROUP = "security"
PURPOSE = "Giải quyết hồ sơ cấp đổi giấy chứng nhận"
__all__ = ["signer"]  # the module-scoped fixture of test_search, used here too


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1 in a thread."""

    def __init__(self, app: Any, log_level: str = "warning") -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, s3_server: str, signer: Any, demo_pki: Any
        ) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{root / 'catalog.db'}"
    cat = Catalog(url)
    cat.upgrade()
    cat.import_agencies(REPO / "samples" / "agencies.csv")
    archive = s3_archive(s3_server)
    docs = {
        "land": archive_signed(cat, archive, signer, "land", [LAND, LAND_P2, LAND_P3], holder_id=H1,
                               procedure_code="1.000110", issued=date(2021, 5, 4)),
        "birth": archive_signed(cat, archive, signer, "birth", [BIRTH], holder_id=H1, procedure_code="1.001193",
                                issued=date(2019, 9, 2)),
        "permit": archive_signed(cat, archive, signer, "permit", ["Giấy phép xây dựng tạm, hết hạn."],
                                 holder_id=H1, procedure_code="1.009972", issued=date(2019, 1, 2),
                                 valid_until=date(2020, 12, 31)),
        "marriage": archive_signed(cat, archive, signer, "marriage", [MARRIAGE], holder_id=H2, kind="TP",
                                   issued=date(2022, 6, 1)),
    }
    tampered_key = "documents/_custom/tampered.pdf"
    archive.put(tampered_key, archive.get(cat.get_document(docs["birth"][0]).pdf_key), content_type="application/pdf")
    docs["tampered"] = archive_record(cat, "tampered", holder_id=H2, pdf_key=tampered_key, pdf_sha256="0" * 64)
    search.rebuild(cat, archive)
    tokens = {"full": api.create_token(cat, "mot-cua-tinh"), "read": api.create_token(cat, "cong-dvc", ["read"]),
              "revoked": api.create_token(cat, "old-system")}
    assert api.revoke_token(cat, "old-system")
    app = api.create_app(cat, archive=archive, trust_roots=[demo_pki.root_cert])
    with ServerThread(app) as base:
        yield {"base": base, "catalog": cat, "archive": archive, "docs": docs, "tokens": tokens, "url": url,
               "s3": s3_server, "bucket": archive.bucket, "root": root}
    cat.close()


def get(env: dict[str, Any], path: str, *, token: str | None = "full", purpose: str | None = PURPOSE,
        **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {env['tokens'].get(token, token)}"
    if purpose is not None:
        headers["X-Purpose"] = quote(purpose)
    return httpx.request(kwargs.pop("method", "GET"), env["base"] + path, headers=headers, timeout=60, **kwargs)


def log_rows(env: dict[str, Any]) -> list[Any]:
    with env["catalog"].read() as conn:
        return list(conn.execute(sa.select(reuse.access_log).order_by(reuse.access_log.c.id)))


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == response.status_code, body
    assert body["error"]["message"] and body["error"]["hint"]
    return dict(body["error"])


# ------------------------------------------------------------------------------------------ auth


def test_missing_unknown_or_revoked_tokens_get_401(env: dict[str, Any]) -> None:
    code = env["docs"]["land"][1]
    for token, headers in ((None, {}), ("dgz_not-a-token", {}), ("revoked", {}),
                           (None, {"Authorization": "Basic dXNlcjpwYXNz"})):
        response = get(env, f"/documents/{code}", token=token, headers=headers)
        assert response.status_code == 401
        assert error(response)["reason"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"] == "Bearer"


def test_refused_requests_are_logged_with_their_reason_and_never_the_token(env: dict[str, Any]) -> None:
    """Decree 13/2023 and the README: refusals are logged too; a 401 has no known client, its path is masked."""
    revoked = env["tokens"]["revoked"]
    cases = ((None, "no bearer token"), ("dgz_not-a-token", "unknown token"),
             ("revoked", "revoked token of client 'old-system"))  # renamed "old-system (revoked <time>)"
    for token, reason in cases:
        before = len(log_rows(env))
        assert get(env, f"/holders/{H1}/documents", token=token).status_code == 401
        rows = log_rows(env)[before:]
        assert [(r.client, r.method, r.path, r.action, r.subject, r.status, r.detail[:len(reason)]) for r in rows] == [
            (None, "GET", "/holders/0790••••1234/documents", "authenticate", None, 401, reason)], token
        stored = " ".join(map(str, rows[0]))
        assert H1 not in stored and "dgz_not-a-token" not in stored and revoked not in stored
    record(GROUP, "API request with no token, an unknown token or a revoked token", "REFUSED", "UNAUTHENTICATED",
           "401; access_log row with no client, the holder ID masked in the path, the reason, never the token")


def test_a_search_by_holder_logs_the_holder_and_what_it_returned(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from digitize.presentation.cli import main

    land, birth = env["docs"]["land"][1], env["docs"]["birth"][1]
    before = len(log_rows(env))
    response = get(env, "/search", params={"q": "giấy", "holder": H1})
    assert response.status_code == 200
    codes = {h["code"] for h in response.json()["hits"]}
    assert land in codes or birth in codes
    row = log_rows(env)[before:][-1]
    assert (row.client, row.action, row.subject, row.purpose, row.status) == (
        "mot-cua-tinh", "holder_search", H1, PURPOSE, 200)
    assert all(f"{code} ({H1})" in row.detail for code in codes) and "q='giấy'" in row.detail
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", env["url"])
    monkeypatch.setenv("DIGITIZE_ACTOR", "can-bo.le@mot-cua")
    assert main(["search", "giấy", "--holder", H1]) == 0
    capsys.readouterr()
    row = log_rows(env)[-1]
    assert (row.client, row.method, row.action, row.subject, row.status) == (
        "can-bo.le@mot-cua", "CLI", "holder_search", H1, 200)
    assert all(code in row.detail for code in codes) and H1 not in row.path
    record(GROUP, "search filtered by holder (API and CLI)", "LOGGED", None,
           "access_log: the holder asked for, the documents and holders returned, the purpose")


def test_the_http_access_log_masks_holder_ids(env: dict[str, Any]) -> None:
    """uvicorn's access log records no access: the holder ID in a path or a query is masked there."""
    import logging

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            lines.append(entry.getMessage())

    app = api.create_app(env["catalog"], archive=env["archive"])
    with ServerThread(app, log_level="info") as base:  # what `api serve` runs
        handler = Collect()
        logging.getLogger("uvicorn.access").addHandler(handler)
        try:
            for path in (f"/holders/{H1}/documents", f"/search?q={H2}&holder={H1}"):
                headers = {"Authorization": f"Bearer {env['tokens']['full']}", "X-Purpose": "test"}
                assert httpx.get(base + path, headers=headers, timeout=60).status_code == 200
        finally:
            logging.getLogger("uvicorn.access").removeHandler(handler)
    text = "\n".join(lines)
    assert len(lines) == 2 and "/holders/0790••••1234/documents" in text and "holder=0790••••1234" in text
    assert H1 not in text and H2 not in text
    record(GROUP, "holder ID in a request path or query, in the HTTP server's access log", "MASKED", None,
           "0790••••1234")


def test_a_read_only_client_cannot_record_reuse_and_the_refusal_is_logged(env: dict[str, Any]) -> None:
    code = env["docs"]["land"][1]
    response = get(env, f"/documents/{code}/reuse", token="read", method="POST",
                   json={"new_dossier_code": "000.00.12.H99-251120-0001", "purpose": "thử"})
    assert response.status_code == 403 and error(response)["reason"] == "FORBIDDEN"
    row = log_rows(env)[-1]
    assert (row.client, row.action, row.subject, row.status) == ("cong-dvc", "reuse", code, 403)


def test_tokens_are_stored_only_as_sha256(env: dict[str, Any]) -> None:
    with env["catalog"].read() as conn:
        rows = list(conn.execute(sa.select(reuse.api_clients)))
    stored = {r.token_sha256 for r in rows}
    for token in env["tokens"].values():
        assert hashlib.sha256(token.encode()).hexdigest() in stored
        assert not any(token in " ".join(map(str, r)) for r in rows)


def test_personal_data_needs_a_purpose_and_every_access_is_logged(env: dict[str, Any]) -> None:
    code = env["docs"]["land"][1]
    before = len(log_rows(env))
    for path in (f"/holders/{H1}/documents", f"/documents/{code}", f"/documents/{code}/pdf", "/search?q=dat"):
        response = get(env, path, purpose=None)
        assert response.status_code == 422 and error(response)["reason"] == "PURPOSE_REQUIRED", path
    started = datetime.now(UTC) - timedelta(seconds=1)
    assert get(env, f"/holders/{H1}/documents").status_code == 200
    assert get(env, f"/documents/{code}", purpose=None, params={"purpose": "kiểm tra"}).status_code == 200
    rows = log_rows(env)[before:]
    assert [(r.action, r.status, r.purpose) for r in rows] == [
        ("holder_documents", 422, ""), ("document", 422, ""), ("document_pdf", 422, ""), ("search", 422, ""),
        ("holder_documents", 200, PURPOSE), ("document", 200, "kiểm tra")]
    last = rows[-2]
    assert (last.client, last.method, last.path, last.subject) == (
        "mot-cua-tinh", "GET", f"/holders/{H1}/documents", H1)
    assert last.detail.startswith("returned 2 document(s): ") and code in last.detail
    assert started <= last.at <= datetime.now(UTC)


# ------------------------------------------------------------------------------------------ endpoints


def test_holder_documents_are_the_still_valid_ones_unless_asked(env: dict[str, Any]) -> None:
    docs = env["docs"]
    body = get(env, f"/holders/{H1}/documents").json()
    assert body["holder_id"] == H1
    assert {d["code"] for d in body["documents"]} == {docs["land"][1], docs["birth"][1]}
    assert all(d["still_valid"] for d in body["documents"])
    expired = get(env, f"/holders/{H1}/documents", params={"include_expired": "true"}).json()["documents"]
    assert {d["code"]: d["still_valid"] for d in expired}[docs["permit"][1]] is False
    only = get(env, f"/holders/{H1}/documents", params={"procedure_code": "1.000110"}).json()["documents"]
    assert [d["code"] for d in only] == [docs["land"][1]]
    assert get(env, f"/holders/{H2}/documents", params={"kind": "TP"}).json()["documents"][0]["code"] == \
        docs["marriage"][1]
    assert get(env, "/holders/000000000000/documents").json()["documents"] == []
    for bad in ("/holders/a%20b/documents", f"/holders/{H1}/documents?kind=XX",
                f"/holders/{H1}/documents?procedure_code=1.1"):
        response = get(env, bad)
        assert response.status_code == 422 and error(response)["reason"] == "INVALID_REQUEST", bad


def test_holder_lookup_uses_the_holder_index(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'plan.db'}")
    catalog.upgrade()
    query = reuse.holder_documents_query(H1, kind="KQ")
    with catalog.read() as conn:
        compiled = query.compile(dialect=conn.dialect)
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params))
    catalog.close()
    assert "USING INDEX ix_documents_holder_id (holder_id=?)" in plan, plan


def test_document_metadata_and_sidecar(env: dict[str, Any]) -> None:
    code = env["docs"]["land"][1]
    body = get(env, f"/documents/{code}").json()
    document = body["document"]
    assert (document["code"], document["holder_id"], document["pages"], document["procedure_code"]) == (
        code, H1, 3, "1.000110")
    assert (body["sidecar"]["code"], body["sidecar"]["version"]) == (code, 1)
    assert get(env, f"/documents/{code}", params={"sidecar": "false"}).json()["sidecar"] is None
    missing = get(env, "/documents/000.00.12.H99.2026.KQ.999999")
    assert missing.status_code == 404 and error(missing)["reason"] == "NOT_FOUND"


def test_pdf_is_served_from_the_archive_with_its_checksum(env: dict[str, Any]) -> None:
    land_id, code = env["docs"]["land"]
    response = get(env, f"/documents/{code}/pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    digest = hashlib.sha256(response.content).hexdigest()
    assert digest == env["catalog"].get_document(land_id).pdf_sha256 == response.headers["x-checksum-sha256"]
    tampered = get(env, f"/documents/{env['docs']['tampered'][1]}/pdf")
    assert tampered.status_code == 502 and error(tampered)["reason"] == "ARCHIVE_INTEGRITY"


def test_verify_recomputes_the_checksum_and_checks_the_signature(env: dict[str, Any]) -> None:
    body = get(env, f"/documents/{env['docs']['land'][1]}/verify", purpose=None).json()
    assert body["checksum_ok"] is True and body["archive_sha256"] == body["catalog_sha256"]
    assert [(o["object"], o["ok"]) for o in body["objects"]] == [("signed PDF", True), ("sidecar", True),
                                                                 ("original 00", True)]
    assert body["signature"]["valid"] and body["signature"]["intact"] and body["signature"]["trusted"]
    tampered = get(env, f"/documents/{env['docs']['tampered'][1]}/verify").json()
    assert tampered["checksum_ok"] is False and tampered["catalog_sha256"] == "0" * 64
    assert tampered["signature"]["valid"] is True  # the bytes are a genuine signed PDF, just not this one


def test_reuse_is_recorded_once_and_feeds_coverage(env: dict[str, Any]) -> None:
    cat = env["catalog"]
    birth_id, birth = env["docs"]["birth"]
    payload = {"new_dossier_code": "000.00.12.H99-251127-0042", "purpose": "Đăng ký thường trú",
               "caller_system": "Hệ thống một cửa điện tử tỉnh"}
    first = get(env, f"/documents/{birth}/reuse", method="POST", json=payload)
    assert first.status_code == 201 and first.json()["created"] is True
    again = get(env, f"/documents/{birth}/reuse", method="POST", json=payload)
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["id"] == first.json()["id"]
    frame = cat.reuse_frame()
    mine = frame[frame["code"] == birth]
    assert len(mine) == 1
    row = mine.iloc[0]
    assert (row["holder_id"], row["client"], row["caller_system"], row["new_dossier_code"]) == (
        H1, "mot-cua-tinh", "Hệ thống một cửa điện tử tỉnh", "000.00.12.H99-251127-0042")
    assert str(frame["reused_at"].dtype) == "datetime64[us, UTC]" or "UTC" in str(frame["reused_at"].dtype)
    assert [e.event_type for e in cat.events(birth_id)].count("reuse") == 1
    bad = get(env, f"/documents/{birth}/reuse", method="POST", json={**payload, "new_dossier_code": "HS-1"})
    assert bad.status_code == 422 and error(bad)["reason"] == "CODE_INVALID"
    expired = get(env, f"/documents/{env['docs']['permit'][1]}/reuse", method="POST", json=payload)
    assert expired.status_code == 409 and error(expired)["reason"] == "DOCUMENT_EXPIRED"
    empty = get(env, f"/documents/{birth}/reuse", method="POST", json={"new_dossier_code": "x"})
    assert empty.status_code == 422
    last = log_rows(env)[-1]  # a body that fails validation never reaches the handler: not logged
    assert (last.action, last.status, last.subject) == ("reuse", 409, env["docs"]["permit"][1])


def test_search_over_http(env: dict[str, Any]) -> None:
    body = get(env, "/search", params={"q": "chuyen nhuong", "holder": H1}).json()
    assert [(h["code"], h["page"]) for h in body["hits"]] == [(env["docs"]["land"][1], 2)]
    assert "«chuyển nhượng»" in body["hits"][0]["snippet"]
    exact = get(env, "/search", params={"q": "chuyen nhuong", "exact": "true"}).json()
    assert exact["hits"] == [] and exact["exact"] is True
    dated = get(env, "/search", params={"q": "giay", "from": "2022-01-01", "to": "2022-12-31"}).json()
    assert [h["code"] for h in dated["hits"]] == [env["docs"]["marriage"][1]]
    for params in ({"q": "giay", "from": "2022-13-01"}, {"q": "giay", "limit": "0"}, {"q": "..."}, {}):
        response = get(env, "/search", params=params)
        assert response.status_code == 422, params
        error(response)


def test_openapi_describes_the_bearer_auth_and_the_errors(env: dict[str, Any]) -> None:
    spec = httpx.get(env["base"] + "/openapi.json", timeout=30).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = spec["paths"]
    assert {"/holders/{holder_id}/documents", "/documents/{code}", "/documents/{code}/pdf",
            "/documents/{code}/verify", "/documents/{code}/reuse", "/search"} <= set(paths)
    for path, ops in paths.items():
        for op in ops.values():
            assert {"401", "403", "422"} <= set(op["responses"]), path


def test_cli_creates_a_token_once_that_the_api_accepts(env: dict[str, Any]) -> None:
    result = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "digitize", "api", "token", "create",
                             "cli-system", "--scope", "read"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DIGITIZE_CATALOG_URL": env["url"]}, cwd=REPO)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith(auth.TOKEN_PREFIX)
    assert get(env, f"/holders/{H2}/documents", token=token).status_code == 200
    listed = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "digitize", "api", "token", "list"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DIGITIZE_CATALOG_URL": env["url"]}, cwd=REPO)
    assert "cli-system" in listed.stdout and token not in listed.stdout


def test_airflow_plugin_mounts_the_api_under_its_prefix(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    import importlib.util

    from fastapi import FastAPI

    for name, value in (("DIGITIZE_CATALOG_URL", env["url"]), ("DIGITIZE_S3_ENDPOINT_URL", env["s3"]),
                        ("DIGITIZE_S3_BUCKET", env["bucket"])):
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("digitize_api_plugin", REPO / "plugins" / "digitize_api.py")
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    (entry,) = plugin.DigitizeApiPlugin.fastapi_apps
    assert entry["url_prefix"] == "/digitize-api"
    parent = FastAPI()
    parent.mount(entry["url_prefix"], entry["app"])  # what Airflow's API server does
    with ServerThread(parent) as base:
        assert httpx.get(f"{base}/digitize-api/search?q=dat", timeout=30).status_code == 401
        response = httpx.get(f"{base}/digitize-api/holders/{H1}/documents",
                             headers={"Authorization": f"Bearer {env['tokens']['full']}", "X-Purpose": "test"},
                             timeout=60)
        assert response.status_code == 200 and len(response.json()["documents"]) == 2


# ------------------------------------------------------------------------------------------ fuzzing


def test_schemathesis_bad_input_gets_4xx_never_500(env: dict[str, Any]) -> None:
    """Generated requests (valid and invalid) against every operation; bounded to a few dozen per operation."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_url(env["base"] + "/openapi.json")
    headers = {"Authorization": f"Bearer {env['tokens']['full']}"}
    failures: list[str] = []
    calls, refused = [0], [0]
    deadline = time.monotonic() + 60
    for result in schema.get_all_operations():
        operation = result.ok()
        if time.monotonic() > deadline:
            break

        @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            generated = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            case.headers = {**generated, **headers}  # the real token, never a generated Authorization header
            response = case.call(timeout=60)
            calls[0] += 1
            refused[0] += response.status_code in (401, 403)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code} "
                                f"{response.text[:200]}")
            elif response.status_code >= 400:
                assert response.json()["error"]["status"] == response.status_code

        check()
    assert failures == []
    assert calls[0] >= 60  # it really ran
    assert refused[0] <= calls[0] * 0.2, f"{refused[0]} of {calls[0]} requests never got past authentication"


def test_airflow_api_server_serves_the_plugin(env: dict[str, Any], airflow_db: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's own API app, plugins loaded from plugins/ by Airflow, over HTTP."""
    from airflow.api_fastapi.app import create_app

    for name, value in (("DIGITIZE_CATALOG_URL", env["url"]), ("DIGITIZE_S3_ENDPOINT_URL", env["s3"]),
                        ("DIGITIZE_S3_BUCKET", env["bucket"])):
        monkeypatch.setenv(name, value)
    with ServerThread(create_app("core")) as base:
        spec = httpx.get(f"{base}/digitize-api/openapi.json", timeout=60).json()
        assert spec["info"]["title"] == "digitize reuse API"
        assert httpx.get(f"{base}/digitize-api/holders/{H1}/documents", timeout=60).status_code == 401
        response = httpx.get(f"{base}/digitize-api/search", params={"q": "khai sinh", "purpose": "test"},
                             headers={"Authorization": f"Bearer {env['tokens']['full']}"}, timeout=60)
        assert response.status_code == 200 and env["docs"]["birth"][1] in {h["code"] for h in response.json()["hits"]}


# ------------------------------------------------------------------------------------------ forged archive objects

FORGED = ("sidecar", "original", "PDF")


@pytest.fixture(scope="module")
def forged(env: dict[str, Any], signer: Any) -> dict[str, str]:
    """One archived document per forged object (overwritten in S3 with a new version whose own recorded
    SHA-256 matches the forged bytes: only the catalog can tell). Made last, so other tests' counts hold."""
    cat, archive = env["catalog"], env["archive"]
    genuine_other = archive.get(cat.get_document(env["docs"]["birth"][0]).pdf_key)
    codes = {}
    for what in FORGED:
        document_id, code = archive_signed(cat, archive, signer, f"forged-{what}", ["Giấy xác nhận"],
                                           agency="000.00.31.H99")
        record = cat.get_document(document_id)
        key, data = {
            "sidecar": (record.sidecar_key, b'{"code": "%s", "version": 1, "holder_id": "079999999999"}'
                        % code.encode()),
            "original": (record.original_keys[0], b"SO TIEN 9999999"),
            "PDF": (record.pdf_key, genuine_other),
        }[what]
        archive.client.put_object(Bucket=archive.bucket, Key=key, Body=data,
                                  Metadata={"sha256": hashlib.sha256(data).hexdigest()})
        codes[what] = code
    return codes


@pytest.mark.parametrize("what", FORGED)
def test_verify_names_the_forged_object(what: str, env: dict[str, Any], forged: dict[str, str]) -> None:
    response = get(env, f"/documents/{forged[what]}/verify", purpose=None)
    assert response.status_code == 200
    body = response.json()
    assert body["checksum_ok"] is False
    failed = [o["object"] for o in body["objects"] if not o["ok"]]
    assert failed == [{"sidecar": "sidecar", "original": "original 00", "PDF": "signed PDF"}[what]], body
    record("security", f"archived {what} overwritten with forged bytes: API /verify", "checksum_ok false", None,
           f"objects: {failed[0]} not ok")


@pytest.mark.parametrize("what", ["sidecar", "PDF"])
def test_forged_sidecar_or_pdf_is_never_served(what: str, env: dict[str, Any], forged: dict[str, str]) -> None:
    code = forged[what]
    path = f"/documents/{code}" if what == "sidecar" else f"/documents/{code}/pdf"
    response = get(env, path)
    assert response.status_code == 502, response.text
    body = error(response)
    assert body["reason"] == "ARCHIVE_INTEGRITY"
    assert ("sidecar" if what == "sidecar" else "signed PDF") in body["message"] and code in body["message"]
    assert "079999999999" not in response.text and not response.content.startswith(b"%PDF")
    assert "restore" in body["hint"]
    record("security", f"archived {what} overwritten with forged bytes: served by the API", "REFUSED (502)",
           "ARCHIVE_INTEGRITY", body["message"].split(":")[0])


def test_validity_is_judged_on_vietnams_day(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The permit is valid until 31/12/2020: at 16:30 UTC that day (23:30 in Vietnam) it may still be reused,
    at 17:30 UTC (00:30 on 1 January in Vietnam) it has expired, whatever the host's own zone says."""
    from digitize import clock

    permit = env["docs"]["permit"][1]
    payload = {"new_dossier_code": "000.00.12.H99-201231-0001", "purpose": "Cấp phép"}
    monkeypatch.setattr(clock, "utc_now", lambda: datetime(2020, 12, 31, 16, 30, tzinfo=UTC))
    assert get(env, f"/documents/{permit}/reuse", method="POST", json=payload).status_code == 201
    listed = get(env, f"/holders/{H1}/documents").json()["documents"]
    assert permit in [d["code"] for d in listed]
    monkeypatch.setattr(clock, "utc_now", lambda: datetime(2020, 12, 31, 17, 30, tzinfo=UTC))
    late = get(env, f"/documents/{permit}/reuse", method="POST", json={**payload, "new_dossier_code":
                                                                         "000.00.12.H99-210101-0002"})
    assert late.status_code == 409 and error(late)["reason"] == "DOCUMENT_EXPIRED"
    assert permit not in [d["code"] for d in get(env, f"/holders/{H1}/documents").json()["documents"]]
