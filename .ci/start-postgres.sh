#!/usr/bin/env bash
# A throwaway PostgreSQL for a Prefect server on 127.0.0.1 (the multi-worker test, or a trial of the recipe in
# docs/WORKERS.md). Installs Debian's postgresql when it is missing (as root, with apt).
#
#   eval "$(.ci/start-postgres.sh 5433)"      # prints PPCMK_PG_DATA=... and PREFECT_API_DATABASE_CONNECTION_URL=...
#   .ci/start-postgres.sh stop "$PPCMK_PG_DATA"
#
# The cluster trusts local connections and skips fsync: it is for tests, never for real data.
set -euo pipefail

as_owner() {  # PostgreSQL refuses to run as root: root runs it as the postgres OS user
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ "${1:-}" = "stop" ]; then
  data=${2:?usage: start-postgres.sh stop DATA_DIR}
  as_owner "$(pg_bin)/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
  rm -rf "$data"
  exit 0
fi

port=${1:?usage: start-postgres.sh PORT}
if [ -z "$(pg_bin)" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "PostgreSQL is not installed; as root: apt-get install -y postgresql" >&2
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
bin=$(pg_bin)
data=$(mktemp -d "${TMPDIR:-/tmp}/ppcmk-pg.XXXXXX")
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$data"; fi
as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c fsync=off -c synchronous_commit=off -c max_connections=200" \
  start >/dev/null
as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres prefect
echo "PPCMK_PG_DATA=$data"
echo "PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://postgres@127.0.0.1:$port/prefect"
