"""The demo PKI: what pdfsig and pyHanko need from the certificates, file modes, idempotence, secrecy."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from digitize.errors import ConfigurationError
from digitize.signing.pki import DOCUMENT_SIGNING_OID, DemoPki, create_demo_pki

AGENCY = "Ủy ban nhân dân tỉnh Tiền Giang"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return create_demo_pki(tmp_path_factory.mktemp("pki"), agency_name=AGENCY)


def _load(pki: DemoPki) -> tuple[object, x509.Certificate, list[x509.Certificate]]:
    key, cert, extra = pkcs12.load_key_and_certificates(pki.pkcs12.read_bytes(), pki.passphrase.encode())
    assert cert is not None
    return key, cert, extra


def test_files_exist_and_are_private(pki: DemoPki) -> None:
    out = pki.pkcs12.parent
    for name in ("root.pem", "agency.p12", "agency.pass"):
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert (out / "agency.pass").read_text().strip() == pki.passphrase
    assert not list(out.glob("*.tmp"))


def test_root_is_a_ca_and_issued_the_agency_certificate(pki: DemoPki) -> None:
    root = x509.load_pem_x509_certificate(pki.root_cert.read_bytes())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    _, cert, extra = _load(pki)
    assert [c.fingerprint(c.signature_hash_algorithm) for c in extra] == [  # type: ignore[arg-type]
        root.fingerprint(root.signature_hash_algorithm)  # type: ignore[arg-type]
    ]
    cert.verify_directly_issued_by(root)


def test_agency_certificate_has_signing_usages_and_vietnamese_subject(pki: DemoPki) -> None:
    key, cert, _ = _load(pki)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment and not ku.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku and DOCUMENT_SIGNING_OID in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == AGENCY
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == AGENCY
    assert key.key_size == 3072  # type: ignore[attr-defined]


def test_second_call_reuses_the_files(pki: DemoPki) -> None:
    before = {p.name: p.read_bytes() for p in pki.pkcs12.parent.iterdir()}
    again = create_demo_pki(pki.pkcs12.parent, agency_name="another name is ignored")
    assert again == pki
    assert {p.name: p.read_bytes() for p in pki.pkcs12.parent.iterdir()} == before


def test_passphrase_is_never_in_repr(pki: DemoPki) -> None:
    assert pki.passphrase not in repr(pki)
    assert pki.passphrase not in str(pki)


def test_given_passphrase_is_used_and_not_written(tmp_path: Path) -> None:
    secret = "mật-khẩu-thử-nghiệm-42"
    made = create_demo_pki(tmp_path, agency_name="Sở Tư pháp", passphrase=secret, key_type="ec-p256")
    assert not (tmp_path / "agency.pass").exists()
    key, _, _ = pkcs12.load_key_and_certificates(made.pkcs12.read_bytes(), secret.encode())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    with pytest.raises(ConfigurationError) as caught:
        create_demo_pki(tmp_path, agency_name="Sở Tư pháp", passphrase="wrong-" + secret)
    assert secret not in str(caught.value) and "wrong-" not in str(caught.value)
    with pytest.raises(ValueError):  # the passphrase really protects the key
        pkcs12.load_key_and_certificates(made.pkcs12.read_bytes(), b"not it")
