#!/usr/bin/env bash
# `make airflow`: the Airflow UI, scheduler, DAG processor and API server on this machine, for IT staff
# to watch and start runs, on the catalog and archive of .env (the folder var/archive by default, which
# survives restarts; with an s3:// archive, the local S3 endpoint is started too). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# Airflow starts its parts by calling `airflow` from PATH: the project's virtualenv comes first.
export PATH="$PWD/.venv/bin:$PATH"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
mkdir -p var/inbox logs

s3_pid=""
case "${DIGITIZE_ARCHIVE_URL:-}" in
  file://*)
    say "archive: the folder ${DIGITIZE_ARCHIVE_URL#file://} (DIGITIZE_ARCHIVE_URL)" ;;
  *)
    port=$(.venv/bin/python -c "from urllib.parse import urlparse; import os; print(urlparse(os.environ['DIGITIZE_S3_ENDPOINT_URL']).port)")
    say "starting the local S3 endpoint (moto, in memory: its objects go when it stops) on $DIGITIZE_S3_ENDPOINT_URL"
    setsid .venv/bin/python -m digitize.dev.s3server --port "$port" >logs/s3server.log 2>&1 &
    s3_pid=$! ;;
esac
say "starting Airflow (api-server, scheduler, dag-processor, triggerer); log in logs/standalone.log"
setsid .venv/bin/airflow standalone >logs/standalone.log 2>&1 &
af_pid=$!
stopped=""
stop() {
  [ -n "$stopped" ] && return
  stopped=1
  say "stopping Airflow${s3_pid:+ and the S3 endpoint}"
  kill -TERM -- -"$af_pid" 2>/dev/null || true
  [ -z "$s3_pid" ] || kill -TERM -- -"$s3_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

healthy=""
for _ in $(seq 1 180); do
  curl -fsS -o /dev/null http://127.0.0.1:8080/api/v2/monitor/health 2>/dev/null && { healthy=1; break; }
  kill -0 "$af_pid" 2>/dev/null || break
  sleep 1
done
if [ -z "$healthy" ]; then
  printf '\033[1;31m==> Airflow did not come up healthy; the end of logs/standalone.log:\033[0m\n' >&2
  tail -40 logs/standalone.log >&2
  exit 1
fi
cat <<MSG

  Airflow UI:  http://127.0.0.1:8080   (user: admin; the generated password is in
               $(pwd)/simple_auth_manager_passwords.json.generated, never printed)
  Drop batches (scans + manifest.csv, then an empty _READY file) into $(pwd)/var/inbox/<batch>/
  or trigger "digitize_inbox" from the UI with its form. Ctrl-C stops everything.

MSG
wait "$af_pid"
