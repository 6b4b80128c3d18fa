#!/usr/bin/env bash
# Installs and starts what `make test` needs on a fresh Debian/Ubuntu
# machine: PostgreSQL and RabbitMQ (installed and started when absent),
# Chromium (the /docs browser test), Node 20 + npm and Java 17 (the
# Jenkinsfile lint). `make test` runs it first. Not root, or not apt: it
# changes nothing and stops at once with the command to run, so no test
# fails late for a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

# port_open PORT succeeds when something listens on 127.0.0.1:PORT.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "error: nothing listens on 127.0.0.1:$1 after 60s" >&2
  return 1
}

# What is missing, before touching anything.
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
# The browser test takes CHROMIUM, else chromium or chromium-browser on the PATH.
[ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
# Services elsewhere (TEST_*_URL set) are not ours to start.
local_pg=$([ -z "${TEST_DATABASE_URL:-}" ] && echo 1 || true)
local_mq=$([ -z "${TEST_AMQP_URL:-}" ] && echo 1 || true)
down=()
[ -z "$local_pg" ] || port_open 5432 || down+=(PostgreSQL)
[ -z "$local_mq" ] || port_open 5672 || down+=(RabbitMQ)

if [ ${#need[@]} -gt 0 ] || [ ${#down[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    [ ${#need[@]} -eq 0 ] || echo "error: missing for make test: ${need[*]}" >&2
    [ ${#down[@]} -eq 0 ] || echo "error: not running on 127.0.0.1: ${down[*]}" >&2
    echo "run (Debian/Ubuntu): sudo $PWD/scripts/setup-test-deps.sh" >&2
    echo "  or install them yourself: sudo apt-get install -y ${need[*]:-postgresql rabbitmq-server}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi

# Debian 13 ships nodejs 20 and default-jre-headless = OpenJDK 17+. Debian 12
# ships nodejs 18, too old: install Node 20 from NodeSource there (its
# nodejs package includes npm).
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "error: Node $(node --version) is too old; make test-deploy needs Node 20 or newer" >&2
  echo "  (Debian 12: install nodejs 20 from https://deb.nodesource.com, then rerun)" >&2
  exit 1
fi
java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')
if [ "${java_major:-0}" -lt 17 ]; then
  echo "error: Java ${java_major:-unknown} is too old; npm-groovy-lint needs Java 17 or newer (apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi

if [ -n "$local_pg" ] && ! port_open 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  wait_port 5432
fi
# Tests connect as postgres over TCP; make sure that works without a password
# (a fresh Debian install uses peer/scram auth, so trust local TCP).
if [ -n "$local_pg" ] && [ "$(id -u)" -eq 0 ] && ! psql "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" -Atc 'select 1' >/dev/null 2>&1; then
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
  { echo "host all all 127.0.0.1/32 trust"; cat "$hba"; } >"$hba.new"
  cat "$hba.new" >"$hba" && rm -f "$hba.new"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main reload
fi

if [ -n "$local_mq" ] && ! port_open 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672
fi
