"""scripts/dotenv.sh: .env gives the Makefile's and the cluster's settings, and what the caller set wins."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _load(dotenv: Path, caller: dict[str, str], *names: str) -> list[str]:
    """The values of ``names`` after ``load_dotenv`` in a bash started with ``caller``'s variables."""
    script = 'set -euo pipefail; . scripts/dotenv.sh; load_dotenv "$1"; ' + "; ".join(
        f'printf "%s\\n" "${{{name}-unset}}"' for name in names)
    env = {"PATH": os.environ["PATH"], **caller}
    out = subprocess.run(["bash", "-c", script, "bash", str(dotenv)], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.splitlines()


def test_the_callers_settings_win_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DIGITIZE_SIGNING_PKCS12=/srv/pki/agency.p12\nDIGITIZE_SIGNING_LEVEL=B-B\n"
                      "# a comment\n\nAWS_DEFAULT_REGION=us-east-1\n")
    values = _load(dotenv, {"DIGITIZE_SIGNING_PKCS12": "/bench/pki/agency ec.p12", "DIGITIZE_SIGNING_LEVEL": ""},
                   "DIGITIZE_SIGNING_PKCS12", "DIGITIZE_SIGNING_LEVEL", "AWS_DEFAULT_REGION")
    assert values == ["/bench/pki/agency ec.p12", "", "us-east-1"]  # set (even empty) wins; unset comes from .env


def test_dotenv_values_reach_the_programs_started(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DIGITIZE_S3_BUCKET=digitize-archive\nDIGITIZE_SIGNING_PASSPHRASE=x_Y-9=z\n")
    show = "import os; print(os.environ['DIGITIZE_S3_BUCKET'], os.environ['DIGITIZE_SIGNING_PASSPHRASE'])"
    script = f'. scripts/dotenv.sh; load_dotenv "$1"; python3 -c "{show}"'
    out = subprocess.run(["bash", "-c", script, "bash", str(dotenv)], cwd=REPO, env={"PATH": os.environ["PATH"]},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "digitize-archive x_Y-9=z"


def test_a_missing_dotenv_is_no_error(tmp_path: Path) -> None:
    assert _load(tmp_path / "absent.env", {"DIGITIZE_S3_BUCKET": "mine"}, "DIGITIZE_S3_BUCKET") == ["mine"]
