#!/usr/bin/env bash
# Idempotent set-up shared by `make demo`, `make test` and `make airflow`:
# Debian packages, the pinned virtualenv, generated secrets, the demo PKI, Airflow's
# metadata database with its pool and connection, and the catalog with the sample agencies.
# Every step prints what it does; a step already done is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

APT_PACKAGES=(tesseract-ocr tesseract-ocr-vie tesseract-ocr-osd poppler-utils qpdf ghostscript
              libnss3-tools fonts-liberation2 softhsm2 postgresql redis-server python3-venv chromium
              libreoffice-calc-nogui)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p var/archive
if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment in .venv"
  python3 -m venv .venv
fi
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  say "installing the pinned Python packages (requirements.txt); the first time takes a few minutes"
  # (this machine's pip configuration may warn about local index folders it cannot see: noise, filtered)
  .venv/bin/pip install --quiet --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
  .venv/bin/pip install --quiet --progress-bar off -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
  echo "$want" > .venv/.requirements.sha256
fi
if ! (cd / && "$ROOT/.venv/bin/python" -c "import digitize" 2>/dev/null); then
  say "installing this project into .venv (editable), so Airflow's processes import the library"
  .venv/bin/pip install --quiet --no-deps -e . >var/pip-editable.log 2>&1 || { cat var/pip-editable.log; exit 1; }
fi

# From here on, everything generated holds a secret or personal data: owner-only (see private.sh).
. scripts/private.sh
private_files .env var var/pki var/pki/* airflow.db var/catalog.db simple_auth_manager_passwords.json.generated logs
# .env: generated secrets, and where the catalog and the archive are. A setting missing from an
# older .env is added (and said); nothing already there is changed.
.venv/bin/python - <<'EOF'
import secrets
from pathlib import Path

root = Path.cwd()
lines = {
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "AIRFLOW__API__SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "DIGITIZE_SIGNING_PASSPHRASE": lambda: secrets.token_urlsafe(24),
    "DIGITIZE_SIGNING_PKCS12": lambda: str(root / "var/pki/agency.p12"),
    "DIGITIZE_TRUST_ROOTS": lambda: str(root / "var/pki/root.pem"),
    # the catalog and a folder archive on this machine: both survive restarts
    "DIGITIZE_CATALOG_URL": lambda: f"sqlite:///{root / 'var/catalog.db'}",
    "DIGITIZE_ARCHIVE_URL": lambda: (root / "var/archive").as_uri(),
    # the local S3 endpoint (moto) of `make cluster`, and of the CLI when pointed at S3 (README)
    "DIGITIZE_S3_ENDPOINT_URL": lambda: "http://127.0.0.1:9010",
    "DIGITIZE_S3_BUCKET": lambda: "digitize-archive",
    # moto's server accepts any credentials; these are not secrets.
    "AWS_ACCESS_KEY_ID": lambda: "testing",
    "AWS_SECRET_ACCESS_KEY": lambda: "testing",
    "AWS_DEFAULT_REGION": lambda: "us-east-1",
}
path = root / ".env"
text = path.read_text() if path.exists() else ""
present = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}
missing = [name for name in lines if name not in present]
if missing:
    what = f"adding {', '.join(missing)} to .env" if text else "generating .env: secrets, catalog and archive"
    print(f"\033[1m==> {what} (git-ignored)\033[0m")
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + "".join(f"{name}={lines[name]()}\n" for name in missing))
    path.chmod(0o600)
EOF
. scripts/dotenv.sh
load_dotenv .env
export AIRFLOW_HOME="$ROOT"

if [ ! -f var/pki/agency.p12 ]; then
  say "creating the demo signing certificate (test root CA + agency certificate) in var/pki"
  .venv/bin/python -m digitize pki init var/pki
fi

say "preparing Airflow (metadata database, pool 'ocr', connection 'digitize_s3')"
.venv/bin/airflow db migrate >var/airflow-migrate.log 2>&1 || { cat var/airflow-migrate.log; exit 1; }
.venv/bin/airflow pools set ocr "$(nproc)" "Tesseract processes: one slot per core" >/dev/null
.venv/bin/airflow connections delete digitize_s3 >/dev/null 2>&1 || true
.venv/bin/airflow connections add digitize_s3 --conn-type aws --conn-login testing --conn-password testing \
  --conn-extra "{\"endpoint_url\": \"${DIGITIZE_S3_ENDPOINT_URL}\", \"region_name\": \"us-east-1\",
                 \"config_kwargs\": {\"s3\": {\"addressing_style\": \"path\"},
                                     \"retries\": {\"mode\": \"standard\", \"max_attempts\": 5}}}" >/dev/null

say "preparing the catalog and importing the sample agencies and register"
.venv/bin/python -m digitize db upgrade
.venv/bin/python -m digitize agencies import samples/agencies.csv
.venv/bin/python -m digitize register import samples/register.csv
