"""Shared fixtures: an isolated Airflow home, a real S3 endpoint on loopback, a test PKI, a catalog.

Airflow reads its configuration when first imported, so its environment is set
here, before any test module imports it: the committed ``airflow.cfg`` with a
throwaway home and metadata database, so tests never touch the developer's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="digitize-airflow-"))

os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-not-used-in-production-0123456789abcdefghijklmnopqrstuvwxyz",
    "AIRFLOW__API__SECRET_KEY": "test-only-api-secret-not-used-in-production-0123456789abcdefghijklmnopqrstuvwxyz",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "OMP_THREAD_LIMIT": "1",
})


def pytest_unconfigure(config: pytest.Config) -> None:
    """The throwaway Airflow home goes with the session: nothing is left in the temporary folder."""
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


# Settings of the developer's .env must not leak into tests.
for _name in [n for n in os.environ if n.startswith("DIGITIZE_")]:
    del os.environ[_name]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database, migrated once per session."""
    result = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server over real HTTP on 127.0.0.1."""
    from digitize.dev.s3server import LocalS3Server

    with LocalS3Server() as server:
        yield server.endpoint_url


@pytest.fixture(scope="session")
def demo_pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A test root CA and agency PKCS#12, generated now, never committed."""
    from digitize.signing.pki import create_demo_pki

    return create_demo_pki(tmp_path_factory.mktemp("pki"), agency_name="Ủy ban nhân dân tỉnh Mẫu",
                           passphrase="test passphrase ÷ not secret", key_type="ec-p256")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One SoftHSM2 token for the session (SoftHSM reads ``SOFTHSM2_CONF`` once per process)."""
    from softhsm import SOFTHSM, init_token

    if not SOFTHSM.exists():
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    hsm = init_token(tmp_path_factory.mktemp("softhsm"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(hsm.conf))
        yield hsm
