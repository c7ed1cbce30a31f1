"""The pipeline signs with a key in a PKCS#11 token (USB token, network HSM), chosen by settings alone.

The token is SoftHSM2's; the demo PKI's agency key and certificate are imported into it, as a CA's
tool puts them on a USB token, and the settings name the token only (no PKCS#12 anywhere). The PIN
comes from a file and must never show up in an outcome, a log, a catalog event, a sidecar or an error.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from pdfsig import pdfsig_check
from pyhanko.pdf_utils.reader import PdfFileReader
from robustness_support import NOOP_OCR, make_context, png, record, register, row, settings_env, write_batch
from softhsm import SoftHsm, import_key_and_certificate, token_certificate

from digitize.config import load_settings
from digitize.errors import ConfigurationError
from digitize.signing import options_from_settings

KEY_LABEL = "pipeline-agency"
NOT_THE_PIN = "wrong-pin-for-the-token-8264"


@pytest.fixture(scope="module")
def token_key(softhsm: SoftHsm, demo_pki: Any) -> str:
    """The demo PKI's agency key and certificate, imported into the session's token; returns their label."""
    key, cert, _ = pkcs12.load_key_and_certificates(demo_pki.pkcs12.read_bytes(), demo_pki.passphrase.encode())
    assert key is not None and cert is not None
    import_key_and_certificate(softhsm, key, cert, label=KEY_LABEL, key_id=b"\x02")  # type: ignore[arg-type]
    return KEY_LABEL


def pkcs11_env(hsm: SoftHsm, pin_file: Path) -> dict[str, str]:
    """The settings that select the token; the PIN only through its file."""
    return {"DIGITIZE_SIGNING_PKCS11_MODULE": str(hsm.module), "DIGITIZE_SIGNING_PKCS11_TOKEN": hsm.token_label,
            "DIGITIZE_SIGNING_PKCS11_KEY": KEY_LABEL, "DIGITIZE_SIGNING_PKCS11_PIN_FILE": str(pin_file)}


@pytest.fixture()
def token_settings(softhsm: SoftHsm, token_key: str, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PKCS#11 settings in this process's environment (no PKCS#12); yields the PIN file."""
    pin_file = tmp_path / "secrets" / "pkcs11_pin"
    pin_file.parent.mkdir()
    pin_file.write_text(softhsm.pin + "\n", encoding="utf-8")
    for name, value in pkcs11_env(softhsm, pin_file).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    yield pin_file


def _pin_nowhere(pin: str, *texts: str) -> None:
    for text in texts:
        assert pin not in text, "the PKCS#11 PIN leaked"


def _one_document(ctx: Any, inbox: Path) -> tuple[Path, int]:
    batch = write_batch(inbox, "batch-p11", {"scan.png": png(("GIẤY XÁC NHẬN", "Ký bằng token"))},
                        [row("scan.png", title="Giấy xác nhận ký bằng token")])
    return batch, register(ctx, batch).to_process[0]


def test_the_pipeline_signs_with_the_token_alone(
        tmp_path: Path, s3_server: str, demo_pki: Any, softhsm: SoftHsm, token_settings: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from digitize.pipeline import process_document

    caplog.set_level(logging.INFO)
    for name in ("digitize", "pyhanko", "pkcs11"):
        caplog.set_level(logging.DEBUG, logger=name)
    ctx = make_context(tmp_path, s3_server, demo_pki, "pkcs11-pipeline", signing_pkcs12=None,
                       signing_passphrase=None)
    assert ctx.settings.signing_pkcs12 is None and ctx.settings.signing_pkcs11_module == softhsm.module
    batch, doc_id = _one_document(ctx, tmp_path / "inbox")
    try:
        outcome = process_document(ctx, doc_id, batch)
        signer_repr = repr(ctx.signer)
    finally:
        ctx.signer.close()  # log out: other tests of this process log in to the same token
    doc = ctx.catalog.get_document(doc_id)
    assert outcome.status == doc.status == "ARCHIVED", (doc.status, doc.reason, doc.message)

    signed = ctx.archive.get(doc.pdf_key)
    from digitize.signing import verify_pdf

    assert verify_pdf(signed, [demo_pki.root_cert]).valid
    (tmp_path / "signed.pdf").write_bytes(signed)
    sig = pdfsig_check(tmp_path / "signed.pdf", demo_pki.root_cert, tmp_path / "nss").signatures[0]
    assert sig.valid and sig.trusted, sig.raw
    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    assert embedded.signer_cert.dump() == token_certificate(softhsm, KEY_LABEL)

    events = json.dumps([dataclasses.asdict(e) for e in ctx.catalog.events(doc_id)], default=str, ensure_ascii=False)
    _pin_nowhere(softhsm.pin, json.dumps(outcome.as_dict(), ensure_ascii=False), caplog.text, events,
                 ctx.archive.get(doc.sidecar_key).decode(), repr(ctx.settings), signer_repr)
    record("security", "signing key in a PKCS#11 token (SoftHSM2), PIN from a file, no PKCS#12", doc.status,
           note="signature by the token's certificate; pyHanko and pdfsig verify it; PIN in no output")


def _cli(batch: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "digitize", "process", "--quiet", str(batch)], env=env,
                          capture_output=True, text=True, timeout=300)


def _child_env(ctx: Any, softhsm: SoftHsm, pin_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    env.update(settings_env(ctx.settings))
    env.pop("DIGITIZE_SIGNING_PKCS11_PIN", None)  # the file only, as in production
    env.update({**pkcs11_env(softhsm, pin_file), **softhsm.env(), "DIGITIZE_PLUGINS": NOOP_OCR})
    assert "DIGITIZE_SIGNING_PKCS12" not in env
    return env


def test_the_cli_processes_a_batch_with_the_token(
        tmp_path: Path, s3_server: str, demo_pki: Any, softhsm: SoftHsm, token_settings: Path) -> None:
    ctx = make_context(tmp_path, s3_server, demo_pki, "pkcs11-cli", signing_pkcs12=None, signing_passphrase=None)
    batch = write_batch(tmp_path / "inbox", "batch-cli", {"scan.png": png(("GIẤY XÁC NHẬN", "CLI"))},
                        [row("scan.png", title="Giấy xác nhận CLI")])
    done = _cli(batch, _child_env(ctx, softhsm, token_settings))
    assert done.returncode == 0, done.stdout + done.stderr
    _pin_nowhere(softhsm.pin, done.stdout, done.stderr)
    [doc] = ctx.catalog.documents()
    assert doc.status == "ARCHIVED", (doc.reason, doc.message)
    signed = ctx.archive.get(doc.pdf_key)
    assert PdfFileReader(io.BytesIO(signed)).embedded_signatures[0].signer_cert.dump() == token_certificate(
        softhsm, KEY_LABEL)


def test_a_wrong_pin_stops_the_run_without_showing_any_pin(
        tmp_path: Path, s3_server: str, demo_pki: Any, softhsm: SoftHsm, token_settings: Path) -> None:
    ctx = make_context(tmp_path, s3_server, demo_pki, "pkcs11-wrong-pin", signing_pkcs12=None,
                       signing_passphrase=None)
    batch = write_batch(tmp_path / "inbox", "batch-pin", {"scan.png": png(("GIẤY XÁC NHẬN", "PIN"))},
                        [row("scan.png", title="Giấy xác nhận PIN")])
    token_settings.write_text(NOT_THE_PIN, encoding="utf-8")
    done = _cli(batch, _child_env(ctx, softhsm, token_settings))
    assert done.returncode == ConfigurationError.exit_code, done.stdout + done.stderr
    assert "CONFIGURATION_ERROR" in done.stderr and "PKCS#11" in done.stderr and softhsm.token_label in done.stderr
    _pin_nowhere(softhsm.pin, done.stdout, done.stderr)
    _pin_nowhere(NOT_THE_PIN, done.stdout, done.stderr)
    [doc] = ctx.catalog.documents()
    assert doc.status == "RECEIVED", "a key problem is the run's, not the document's"
    events = json.dumps([dataclasses.asdict(e) for e in ctx.catalog.events(doc.id)], default=str, ensure_ascii=False)
    _pin_nowhere(NOT_THE_PIN, events)
    record("security", "PKCS#11 token with a wrong PIN (CLI process)", "STOPPED", "CONFIGURATION_ERROR",
           note="exit 2, document left RECEIVED; neither PIN in output or events")


@pytest.mark.parametrize("case", ["both", "neither", "module missing", "no token label"])
def test_exactly_one_signing_key_must_be_configured(
        case: str, demo_pki: Any, softhsm: SoftHsm, token_settings: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = {"both": "both", "neither": "No agency certificate", "module missing": "not found",
                "no token label": "DIGITIZE_SIGNING_PKCS11_TOKEN"}[case]
    if case == "both":
        monkeypatch.setenv("DIGITIZE_SIGNING_PKCS12", str(demo_pki.pkcs12))
        monkeypatch.setenv("DIGITIZE_SIGNING_PASSPHRASE", demo_pki.passphrase)
    elif case == "neither":
        monkeypatch.delenv("DIGITIZE_SIGNING_PKCS11_MODULE")
    elif case == "module missing":
        monkeypatch.setenv("DIGITIZE_SIGNING_PKCS11_MODULE", str(tmp_path / "libnothere.so"))
    else:
        monkeypatch.delenv("DIGITIZE_SIGNING_PKCS11_TOKEN")
    with pytest.raises(ConfigurationError, match=expected) as caught:
        from digitize.signing import AgencySigner

        AgencySigner.from_options(options_from_settings(load_settings()))
    _pin_nowhere(softhsm.pin, str(caught.value), caught.value.hint)
    _pin_nowhere(demo_pki.passphrase, str(caught.value), caught.value.hint)
    label = {"both": "both DIGITIZE_SIGNING_PKCS12 and the PKCS#11 settings", "neither": "neither",
             "module missing": "a PKCS#11 module path that does not exist",
             "no token label": "a PKCS#11 module without a token label"}[case]
    record("security", f"signing key settings: {label}", "STOPPED", "CONFIGURATION_ERROR",
           note=caught.value.message.replace(str(tmp_path), "DIR"))


def test_the_pin_is_read_from_its_file_and_never_shown(softhsm: SoftHsm, token_settings: Path) -> None:
    settings = load_settings()
    assert settings.signing_pkcs11_pin == softhsm.pin  # the file's line end dropped
    options = options_from_settings(settings)
    assert options.pkcs11 is not None and options.pkcs12_path is None
    _pin_nowhere(softhsm.pin, repr(settings), repr(options), repr(options.pkcs11))


def test_an_unreadable_pin_file_is_a_configuration_error(token_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITIZE_SIGNING_PKCS11_PIN_FILE", str(token_settings.parent / "no-such-pin"))
    with pytest.raises(ConfigurationError, match=r"DIGITIZE_SIGNING_PKCS11_PIN_FILE=.*no-such-pin"):
        load_settings()


def test_two_signers_of_one_process_share_the_token_login(demo_pki: Any, token_settings: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """PKCS#11 logs in the process, not the session: a second signer (the next chunk task of a
    ``dag.test()`` run, a second context) must not fail with UserAlreadyLoggedIn."""
    from imagegen import image_only_pdf, render_page

    from digitize.signing import AgencySigner, verify_pdf

    monkeypatch.setenv("DIGITIZE_TRUST_ROOTS", str(demo_pki.root_cert))
    pdf = image_only_pdf(render_page(("GIẤY XÁC NHẬN",), width_in=3.0, height_in=1.5), tmp_path / "in.pdf").read_bytes()
    first = AgencySigner.from_options(options_from_settings(load_settings()))
    try:
        second = AgencySigner.from_options(options_from_settings(load_settings()))
        for signer in (first, second):
            signed = signer.sign(pdf, document_code="000.00.12.H99.2026.KQ.000009", title="x")
            assert verify_pdf(signed, [demo_pki.root_cert]).valid
    finally:
        first.close()  # logs the process out: second's session goes with it


DAG_CHILD = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
run = bag.dags["digitize_inbox"].test(run_conf={"inbox": sys.argv[2], "batch": sys.argv[3], "chunk_size": 2})
with create_session() as session:
    xcoms = [str(v) for (v,) in session.query(XComModel.value).filter_by(dag_id=run.dag_id, run_id=run.run_id)]
print("RESULT " + json.dumps({"state": str(run.state), "xcoms": xcoms}))
"""


@pytest.mark.slow
def test_the_inbox_dag_signs_with_the_token(
        tmp_path: Path, s3_server: str, demo_pki: Any, softhsm: SoftHsm, token_settings: Path,
        airflow_db: Path) -> None:
    """A real ``dag.test()`` run, in a child process: its tasks log in to the token and never log out."""
    ctx = make_context(tmp_path, s3_server, demo_pki, "pkcs11-dag", signing_pkcs12=None, signing_passphrase=None)
    inbox = tmp_path / "inbox"
    write_batch(inbox, "b-p11", {f"d{i}.png": png(("GIẤY XÁC NHẬN", f"DAG {i}")) for i in range(3)},
                [row(f"d{i}.png", title=f"Giấy xác nhận DAG {i}") for i in range(3)])
    env = {**_child_env(ctx, softhsm, token_settings), "DIGITIZE_QUIET_SECONDS": "0"}
    done = subprocess.run([sys.executable, "-c", DAG_CHILD, str(Path(__file__).parent.parent / "dags"), str(inbox),
                           "b-p11"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.rsplit("RESULT ", 1)[1])
    assert result["state"] == "success", done.stdout[-3000:]
    _pin_nowhere(softhsm.pin, done.stdout, done.stderr, *result["xcoms"])
    docs = ctx.catalog.documents()
    assert sorted(d.status for d in docs) == ["ARCHIVED"] * 3, [(d.reason, d.message) for d in docs]
    cert = token_certificate(softhsm, KEY_LABEL)
    for doc in docs:
        embedded = PdfFileReader(io.BytesIO(ctx.archive.get(doc.pdf_key))).embedded_signatures[0]
        assert embedded.signer_cert.dump() == cert
