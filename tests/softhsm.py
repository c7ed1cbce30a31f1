"""A SoftHSM2 token for the PKCS#11 tests, and putting keys and certificates into it.

One token per test session, in a configuration of its own (``SOFTHSM2_CONF``): SoftHSM reads that
file once per process, when the module is first initialised, so every test of a process must use
the same one. Keys are either generated inside the token (they never leave it, as on a real USB
token) or imported from a key the test made (the demo PKI's agency key, so that the pipeline's
signature can be traced to a known certificate).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "digitize-test"
TOKEN_PIN = "token-user-pin-5791"


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM2 token made for this test session."""

    conf: Path
    """Its ``SOFTHSM2_CONF`` file (token directory in the test's temporary folder)."""

    module: Path = SOFTHSM
    token_label: str = TOKEN_LABEL
    pin: str = field(default=TOKEN_PIN, repr=False)

    def env(self) -> dict[str, str]:
        """What a child process needs to find the token."""
        return {"SOFTHSM2_CONF": str(self.conf)}

    def session(self):  # type: ignore[no-untyped-def]
        """A read-write, logged-in session (a context manager) of python-pkcs11.

        PKCS#11 logs in the application, not the session: once a signer of this process has logged
        in, a new session is logged in already and a second login is refused.
        """
        import pkcs11

        token = pkcs11.lib(str(self.module)).get_token(token_label=self.token_label)
        try:
            return token.open(rw=True, user_pin=self.pin)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            return token.open(rw=True)


def init_token(directory: Path) -> SoftHsm:
    """Write a SoftHSM2 configuration in ``directory`` and initialise one empty token there."""
    (directory / "tokens").mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", "so-pin-1",
         "--pin", TOKEN_PIN],
        check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    return SoftHsm(conf=conf)


def store_certificate(session, cert: x509.Certificate, *, label: str, key_id: bytes) -> None:  # type: ignore[no-untyped-def]
    """Put ``cert`` into the token, under the label and id of its private key."""
    import pkcs11

    session.create_object({
        pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
        pkcs11.Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
        pkcs11.Attribute.TOKEN: True,
        pkcs11.Attribute.LABEL: label,
        pkcs11.Attribute.ID: key_id,
        pkcs11.Attribute.SUBJECT: cert.subject.public_bytes(),
        pkcs11.Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
    })


def import_key_and_certificate(hsm: SoftHsm, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                               cert: x509.Certificate, *, label: str, key_id: bytes) -> None:
    """Import a private key (RSA or EC P-256) and its certificate into the token, as a CA's tool would."""
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters
    from pkcs11.util.rsa import decode_rsa_private_key

    attrs: dict[pkcs11.Attribute, object]
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        attrs = dict(decode_rsa_private_key(der))
    else:
        assert isinstance(key.curve, ec.SECP256R1), "only P-256 is imported here"
        attrs = {pkcs11.Attribute.KEY_TYPE: pkcs11.KeyType.EC,
                 pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1"),
                 pkcs11.Attribute.VALUE: key.private_numbers().private_value.to_bytes(32, "big")}
    attrs.update({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY, pkcs11.Attribute.TOKEN: True,
                  pkcs11.Attribute.PRIVATE: True, pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.SIGN: True,
                  pkcs11.Attribute.LABEL: label, pkcs11.Attribute.ID: key_id})
    with hsm.session() as session:
        session.create_object(attrs)
        store_certificate(session, cert, label=label, key_id=key_id)


def token_certificate(hsm: SoftHsm, label: str) -> bytes:
    """DER of the certificate stored in the token under ``label``."""
    import pkcs11

    with hsm.session() as session:
        found = list(session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                                          pkcs11.Attribute.LABEL: label}))
        assert len(found) == 1, f"{len(found)} certificates labelled {label!r}"
        return bytes(found[0][pkcs11.Attribute.VALUE])
