# Sourced by the Makefile and the set-up scripts: `load_dotenv FILE` exports FILE's settings (.env) as defaults.
# A variable the caller already set wins, so `DIGITIZE_SIGNING_PKCS12=… make cluster` signs with that certificate
# and a benchmark's own settings reach every process it starts, not .env's.
load_dotenv() {
  local file=$1 name entry kept=()
  [ -f "$file" ] || return 0
  while IFS='=' read -r name _; do
    if [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && [ -n "${!name+set}" ]; then kept+=("$name=${!name}"); fi
  done <"$file"
  set -a
  # shellcheck disable=SC1090  # the file is the caller's choice
  . "$file"
  set +a
  for entry in "${kept[@]}"; do export "$entry"; done
}
