#!/usr/bin/env bash
# `make cluster`: the distributed profile on one machine — the same DAGs on CeleryExecutor with a
# Redis broker, PostgreSQL for Airflow's metadata and for the catalog, the archive (and an inbox
# bucket) on a local S3 endpoint, two Celery workers, api-server, scheduler, dag-processor and
# triggerer (DeadlineAlert callbacks run there). Ctrl-C stops everything, whole process groups.
#
# Everything is configured here with AIRFLOW__* variables; the committed airflow.cfg stays the
# single-machine profile. PostgreSQL and Redis are throwaway instances on 127.0.0.1 under
# $CLUSTER_DIR (default var/cluster), installed from Debian's packages when missing.
#
# Sizing (see README, "Deployment guide"): Tesseract runs one thread per process, and
# tasks at once x processes per task must not exceed a machine's cores. So
#   pool "ocr"          = total cores of all workers (one slot per Tesseract process);
#   pool_slots per task = DIGITIZE_OCR_JOBS (Tesseract processes one chunk task runs);
#   worker concurrency  = that worker's cores / DIGITIZE_OCR_JOBS, because the pool is global:
#                         it alone would let one worker take every slot and oversubscribe its cores.
# Here two workers share this machine's cores, so each counts half of them.
#
# Settings (environment): CLUSTER_DIR, CLUSTER_WORKERS (2), CLUSTER_API_PORT (8090),
# DIGITIZE_OCR_JOBS (1), DIGITIZE_SIGNING_QUEUE (unset: any worker signs; "signing": every worker
# runs the prepare_chunk tasks (OCR), only worker1, the token holder, the sign_chunk tasks; every
# process must see the same value: the task ids depend on it), CLUSTER_SEED (1: import samples),
# CLUSTER_EXECUTOR_CLASS (prompt_local.LocalExecutor or prompt_celery.CeleryExecutor; Airflow's own, with
# AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=1, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Airflow's processes start others by calling `airflow` from PATH: the project's virtualenv comes first.
export PATH="$ROOT/.venv/bin:$PATH"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
. scripts/private.sh  # the cluster's files, logs, databases and Airflow's generated password: owner-only
free_port() { "$ROOT/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

DIR=${CLUSTER_DIR:-$ROOT/var/cluster}
EXECUTOR=${CLUSTER_EXECUTOR:-CeleryExecutor}  # LocalExecutor: same services without Redis' workers (benchmarks)
WORKERS=${CLUSTER_WORKERS:-2}
[ "$EXECUTOR" = CeleryExecutor ] || WORKERS=1
API_PORT=${CLUSTER_API_PORT:-8090}
CORES=$(env -u OMP_THREAD_LIMIT -u OMP_NUM_THREADS nproc)  # nproc obeys OMP_* limits: not what we want here
export DIGITIZE_OCR_JOBS=${DIGITIZE_OCR_JOBS:-1}
PER_WORKER_CORES=$(( CORES / WORKERS > 0 ? CORES / WORKERS : 1 ))
CONCURRENCY=$(( PER_WORKER_CORES / DIGITIZE_OCR_JOBS > 0 ? PER_WORKER_CORES / DIGITIZE_OCR_JOBS : 1 ))
AIRFLOW="$ROOT/.venv/bin/airflow"
mkdir -p "$DIR/logs" "$DIR/redis"
chmod 711 "$DIR"  # others may pass through (PostgreSQL's own folder, owned by user postgres) but not list it
: >"$DIR/pids"  # process-group leaders, one per line, for operators (and the test) to check

pids=()
pg_started=""
stop() {
  trap - EXIT INT TERM
  say "stopping the cluster"
  for pid in "${pids[@]}"; do kill -TERM -- -"$pid" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 -- -"$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 1
  done
  for pid in "${pids[@]}"; do kill -KILL -- -"$pid" 2>/dev/null || true; done
  [ -n "$pg_started" ] && bash scripts/postgres.sh stop "$DIR/pg" || true
  rm -f "$DIR/ready"
}
trap stop EXIT INT TERM
start() {  # start NAME CMD...: own session (= own process group) so stop() can signal all its children
  local name=$1; shift
  setsid "$@" >"$DIR/logs/$name.log" 2>&1 &
  pids+=("$!")
  echo "$! $name" >>"$DIR/pids"
}

. scripts/dotenv.sh
load_dotenv .env  # its settings, unless the caller set them (a benchmark sets its own certificate)
if [ -z "${AIRFLOW__API_AUTH__JWT_SECRET:-}" ]; then
  AIRFLOW__API_AUTH__JWT_SECRET=$("$ROOT/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
  AIRFLOW__API__SECRET_KEY=$AIRFLOW__API_AUTH__JWT_SECRET
fi
export AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} OMP_THREAD_LIMIT=1

if ! command -v redis-server >/dev/null; then
  say "installing Debian's redis-server package"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
say "starting PostgreSQL (metadata + catalog) under $DIR/pg"
PG_URL=$(POSTGRES_FSYNC=${POSTGRES_FSYNC:-on} bash scripts/postgres.sh start "$DIR/pg")
pg_started=1
PG_BASE=${PG_URL%/postgres}
"$ROOT/.venv/bin/python" - "$PG_URL" <<'EOF'
import sys

import psycopg

with psycopg.connect(sys.argv[1].replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
    for name in ("airflow", "catalog"):
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
EOF
REDIS_PORT=$(free_port)
say "starting Redis (broker) on 127.0.0.1:$REDIS_PORT"
start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DIR/redis" --save "" --appendonly no
S3_PORT=${CLUSTER_S3_PORT:-$(free_port)}
say "starting the local S3 endpoint on 127.0.0.1:$S3_PORT"
start s3 "$ROOT/.venv/bin/python" -m digitize.dev.s3server --port "$S3_PORT"

export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT}
export AIRFLOW_CONFIG=${AIRFLOW_CONFIG:-$ROOT/airflow.cfg}
# plugins/prompt_executors.py: the executor does the scheduler's idle wait, so a task's end wakes it at once.
PROMPT=prompt_celery.CeleryExecutor; [ "$EXECUTOR" = CeleryExecutor ] || PROMPT=prompt_local.LocalExecutor
export AIRFLOW__CORE__EXECUTOR=${CLUSTER_EXECUTOR_CLASS:-$PROMPT}
export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=${AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-0}
export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}
export AIRFLOW__CORE__PLUGINS_FOLDER=${AIRFLOW__CORE__PLUGINS_FOLDER:-$ROOT/plugins}
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$PG_BASE/airflow"
# psycopg 3 also serves Airflow's async engine (otherwise it wants asyncpg).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC="${PG_BASE/postgresql+psycopg/postgresql+psycopg_async}/airflow"
export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
export AIRFLOW__CELERY__RESULT_BACKEND="redis://127.0.0.1:$REDIS_PORT/1"
export AIRFLOW__CELERY__WORKER_CONCURRENCY=$CONCURRENCY
export AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT=21600
export AIRFLOW__CORE__PARALLELISM=$(( WORKERS * CONCURRENCY + 4 ))
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=$(( WORKERS * CONCURRENCY + 4 ))
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$DIR/logs/airflow"
export AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY="$DIR/logs/dag_processor"
export AIRFLOW__API__PORT=$API_PORT AIRFLOW__API__BASE_URL="http://127.0.0.1:$API_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$API_PORT/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-10}
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=${AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL:-10}
export DIGITIZE_CATALOG_URL="$PG_BASE/catalog"
export DIGITIZE_S3_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
export DIGITIZE_S3_BUCKET=${DIGITIZE_S3_BUCKET:-digitize-archive}
export DIGITIZE_ARCHIVE_URL="s3://$DIGITIZE_S3_BUCKET"  # not .env's folder (one machine's): workers share S3
export DIGITIZE_DEADLINE_MINUTES=${DIGITIZE_DEADLINE_MINUTES:-30}  # inbox runs this much over their average: alert
[ -z "${DIGITIZE_SIGNING_QUEUE:-}" ] || export DIGITIZE_SIGNING_QUEUE  # the same DAG shape in every process
export AIRFLOW_CONN_DIGITIZE_S3="{\"conn_type\": \"aws\", \"login\": \"$AWS_ACCESS_KEY_ID\", \"password\": \"$AWS_SECRET_ACCESS_KEY\",
  \"extra\": {\"endpoint_url\": \"$DIGITIZE_S3_ENDPOINT_URL\", \"region_name\": \"$AWS_DEFAULT_REGION\",
  \"config_kwargs\": {\"s3\": {\"addressing_style\": \"path\"}, \"retries\": {\"mode\": \"standard\", \"max_attempts\": 5}}}}"
if [ -z "${DIGITIZE_SIGNING_PKCS12:-}" ]; then
  [ -f var/pki/agency.p12 ] || "$ROOT/.venv/bin/python" -m digitize pki init var/pki >/dev/null
fi

say "migrating Airflow's metadata database; pool 'ocr' = $CORES slot(s); catalog schema"
"$AIRFLOW" db migrate >"$DIR/logs/migrate.log" 2>&1 || { cat "$DIR/logs/migrate.log"; exit 1; }
"$AIRFLOW" pools set ocr "$CORES" "Tesseract processes: one slot per core of the workers" >/dev/null
"$ROOT/.venv/bin/python" -m digitize db upgrade >/dev/null
if [ "${CLUSTER_SEED:-1}" = 1 ]; then
  "$ROOT/.venv/bin/python" -m digitize agencies import samples/agencies.csv >/dev/null
  "$ROOT/.venv/bin/python" -m digitize register import samples/register.csv >/dev/null
fi

say "starting api-server (:$API_PORT), scheduler, dag-processor, triggerer and $WORKERS worker(s) x $CONCURRENCY"
start api-server "$AIRFLOW" api-server --port "$API_PORT"
start scheduler "$AIRFLOW" scheduler
start dag-processor "$AIRFLOW" dag-processor
start triggerer "$AIRFLOW" triggerer
[ "$EXECUTOR" = CeleryExecutor ] || WORKERS=0  # LocalExecutor runs tasks in the scheduler's own workers
for i in $(seq 1 "$WORKERS"); do
  queues=default  # worker1 holds the signing token: it alone also serves the signing queue (sign_chunk)
  if [ "$i" = 1 ] && [ -n "${DIGITIZE_SIGNING_QUEUE:-}" ]; then queues="default,$DIGITIZE_SIGNING_QUEUE"; fi
  DIGITIZE_WORKER_NAME="worker$i" start "worker$i" "$AIRFLOW" celery worker --celery-hostname "worker$i@%h" \
    --concurrency "$CONCURRENCY" --queues "$queues" --without-gossip --without-mingle
done

healthy=""
for _ in $(seq 1 180); do
  curl -fsS -o /dev/null "http://127.0.0.1:$API_PORT/api/v2/monitor/health" 2>/dev/null && { healthy=1; break; }
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { say "a process stopped early; logs in $DIR/logs"; tail -20 "$DIR"/logs/*.log; exit 1; }
  done
  sleep 1
done
if [ -z "$healthy" ]; then
  say "the API server did not come up healthy in 180 s; the end of its log:" >&2
  tail -40 "$DIR"/logs/api-server.log >&2 2>/dev/null || tail -20 "$DIR"/logs/*.log >&2
  exit 1
fi
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
private_files "$passwords"  # generated by the API server just now
# What a client (the CLI, a test) needs to reach this cluster; written last, so its presence means "ready".
cat >"$DIR/ready.tmp" <<EOF
AIRFLOW_API=http://127.0.0.1:$API_PORT
AIRFLOW__CORE__EXECUTOR=$AIRFLOW__CORE__EXECUTOR
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC
AIRFLOW__CELERY__BROKER_URL=$AIRFLOW__CELERY__BROKER_URL
AIRFLOW__CELERY__RESULT_BACKEND=$AIRFLOW__CELERY__RESULT_BACKEND
DIGITIZE_CATALOG_URL=$DIGITIZE_CATALOG_URL
DIGITIZE_S3_ENDPOINT_URL=$DIGITIZE_S3_ENDPOINT_URL
EOF
mv "$DIR/ready.tmp" "$DIR/ready"
cat <<MSG

  Airflow UI:      http://127.0.0.1:$API_PORT   (user: admin; the generated password is in $passwords, never printed)
  Executor:        $EXECUTOR, $WORKERS Celery worker(s) x concurrency $CONCURRENCY, pool ocr = $CORES, ${DIGITIZE_OCR_JOBS} Tesseract process(es) per task
  Broker:          $AIRFLOW__CELERY__BROKER_URL
  PostgreSQL:      $PG_BASE/airflow (metadata), $PG_BASE/catalog (catalog)
  S3 endpoint:     $DIGITIZE_S3_ENDPOINT_URL  (archive bucket $DIGITIZE_S3_BUCKET; put backlogs under any other bucket)
  Logs:            $DIR/logs
  Trigger "digitize_backlog" from the UI with a folder or s3://bucket/prefix/. Ctrl-C stops everything.

MSG
while true; do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { say "process $pid stopped; see $DIR/logs"; exit 1; }
  done
  sleep 2
done
