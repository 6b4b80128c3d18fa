#!/usr/bin/env bash
# Checks that the PostgreSQL and RabbitMQ the tests use are reachable, and
# says clearly which one is not. URLs come from TEST_DATABASE_URL and
# TEST_AMQP_URL (the defaults match a local install).
set -euo pipefail

db_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
amqp_url=${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

# hostport URL DEFAULT_PORT prints host:port of a URL (credentials dropped).
hostport() {
  local rest=${1#*://}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  rest=${rest##*@}
  case $rest in
    *:*) echo "$rest" ;;
    *) echo "$rest:$2" ;;
  esac
}

fail=0
for pair in "PostgreSQL|$db_url|5432" "RabbitMQ|$amqp_url|5672"; do
  IFS='|' read -r name url port <<<"$pair"
  hp=$(hostport "$url" "$port")
  host=${hp%:*}
  p=${hp##*:}
  if timeout 3 bash -c "exec 3<>/dev/tcp/$host/$p" 2>/dev/null; then
    echo "ok: $name reachable at $host:$p"
  else
    echo "error: $name is not reachable at $host:$p (set the TEST_*_URL variables to point elsewhere, or start it; see README 'Test')" >&2
    fail=1
  fi
done
# faults.TestCluster starts a RabbitMQ cluster of its own from Debian's package.
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || [ ! -x /usr/lib/rabbitmq/bin/rabbitmqctl ]; then
  echo "error: /usr/lib/rabbitmq/bin/rabbitmq-server not found: the cluster test (faults.TestCluster) needs Debian's rabbitmq-server package (apt-get install rabbitmq-server)" >&2
  fail=1
fi
exit $fail
