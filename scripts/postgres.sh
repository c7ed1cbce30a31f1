#!/usr/bin/env bash
# Throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.
#
#   scripts/postgres.sh start DIR [PORT]   # prints the SQLAlchemy URL on stdout (and nothing else)
#   scripts/postgres.sh stop DIR           # stops the cluster and deletes DIR
#   scripts/postgres.sh halt DIR           # stops the cluster and keeps DIR (start DIR again reuses it)
#
# Installs Debian's `postgresql` package when no server binaries are present
# (needs root, as on CI). Any installed major version works: pg_ctl/initdb are
# looked up under /usr/lib/postgresql/*/bin. As root the server runs as the
# `postgres` user (initdb refuses root). Trust authentication, 127.0.0.1 only,
# socket in DIR: never use this for real data. POSTGRES_FSYNC=off (tests) skips
# fsync for speed; the default keeps it on so benchmarks measure real commits.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/pg_ctl" && -x "$dir/initdb" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

ensure_installed() {
    if find_bindir >/dev/null; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        log "PostgreSQL server not installed and not root: run 'apt-get install -y postgresql' as root"
        exit 1
    fi
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    find_bindir >/dev/null || { log "postgresql installed but no server binaries under /usr/lib/postgresql"; exit 1; }
}

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        echo $((20000 + RANDOM % 40000))
    fi
}

start() {
    local dir=$1 port=${2:-}
    ensure_installed
    local bindir
    bindir=$(find_bindir)
    [[ -n "$port" ]] || port=$(free_port)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        chmod 700 "$dir"
        runuser -u postgres -- test -w "$dir" \
            || { log "user postgres cannot reach $dir (a parent folder is private): pick a folder under /tmp"; exit 1; }
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || { log "initdb failed, see $dir/initdb.log"; cat "$dir/initdb.log" >&2; exit 1; }
    fi
    local attempt
    for attempt in 1 2 3; do  # a free port can be taken before the server binds it: pick another
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=${POSTGRES_FSYNC:-on}" \
            start >&2; then
            break
        fi
        if [[ $attempt -eq 3 || -n "${2:-}" ]]; then
            log "pg_ctl start failed, see $dir/server.log"; tail -20 "$dir/server.log" >&2; exit 1
        fi
        port=$(free_port)
    done
    echo "$port" >"$dir/port"
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

halt() {
    local dir=$1 bindir
    bindir=$(find_bindir) || return 0
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
}

stop() {
    local dir=$1
    [[ -d "$dir" ]] || return 0
    local bindir
    bindir=$(find_bindir) || { rm -rf "$dir"; return 0; }
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) [[ $# -ge 2 ]] || { log "usage: $0 start DIR [PORT]"; exit 2; }; start "$2" "${3:-}" ;;
    stop) [[ $# -ge 2 ]] || { log "usage: $0 stop DIR"; exit 2; }; stop "$2" ;;
    halt) [[ $# -ge 2 ]] || { log "usage: $0 halt DIR"; exit 2; }; halt "$2" ;;
    *) log "usage: $0 start DIR [PORT] | stop DIR | halt DIR"; exit 2 ;;
esac
