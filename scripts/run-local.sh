#!/usr/bin/env bash
# Runs the whole system locally without internet: the fake stooq, the
# schema migration, the stock service and the API service. Settings come
# from the environment, then from ./.env if present (only for variables
# the environment does not set), then from the local defaults below.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f .env ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in '' | '#'*) continue ;; esac
    key=${line%%=*}
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    [ -n "${!key+set}" ] && continue # the environment wins
    val=${line#*=}
    case $val in
      \"*\") val=${val:1:${#val}-2} ;;
      \'*\') val=${val:1:${#val}-2} ;;
    esac
    export "$key=$val"
  done <.env
fi

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/stockquote?sslmode=disable}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
export STOOQ_URL=${STOOQ_URL:-http://127.0.0.1:8089}
API_ADDR=${API_ADDR:-127.0.0.1:8080}
WORKER_ADDR=${WORKER_ADDR:-127.0.0.1:8081}
if [ -z "${JWT_SECRET:-}" ]; then
  JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
  export JWT_SECRET
  echo "run-local: JWT_SECRET not set; generated a random one for this run (tokens end with it)"
fi

# Create the database when it is missing and psql is at hand.
db_name=${DATABASE_URL##*/}
db_name=${db_name%%\?*}
admin_url=${DATABASE_URL%/*}/postgres?${DATABASE_URL#*\?}
if command -v psql >/dev/null 2>&1; then
  if ! psql "$DATABASE_URL" -Atc 'select 1' >/dev/null 2>&1; then
    echo "run-local: creating database $db_name"
    psql "$admin_url" -qc "CREATE DATABASE \"$db_name\"" || true
  fi
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [ "$STOOQ_URL" = "http://127.0.0.1:8089" ]; then
  bin/fakestooq -addr 127.0.0.1:8089 & pids+=($!)
fi
bin/apiservice migrate
HTTP_ADDR=$WORKER_ADDR bin/stockservice & pids+=($!)
HTTP_ADDR=$API_ADDR bin/apiservice & pids+=($!)

cat <<MSG
run-local: API on http://$API_ADDR, stock service probes on http://$WORKER_ADDR, stooq at $STOOQ_URL
run-local: create users in another shell with the same DATABASE_URL, e.g.
  printf '%s\n' 'choose-a-password' | DATABASE_URL='$DATABASE_URL' bin/apiservice user add -name admin -superuser
MSG
wait -n "${pids[@]}"
