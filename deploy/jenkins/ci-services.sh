#!/usr/bin/env bash
# Starts throw-away PostgreSQL and RabbitMQ containers for one CI build and
# writes the TEST_*_URL variables the integration tests read to
# ci-services.env; `stop` removes them. Each build gets its own containers
# (named after BUILD_TAG) on random host ports, so parallel builds on one
# agent do not collide.
#
#   deploy/jenkins/ci-services.sh start   # then: . ./ci-services.env
#   deploy/jenkins/ci-services.sh stop
set -euo pipefail

tag=$(echo "${BUILD_TAG:-local-$$}" | tr -c 'a-zA-Z0-9_.-' '-')
pg="sq-pg-$tag"
mq="sq-mq-$tag"
env_file=${CI_SERVICES_ENV:-ci-services.env}

case "${1:-}" in
start)
  # CI_POSTGRES_IMAGE / CI_RABBITMQ_IMAGE: other images than the official ones (a mirror; make test-live's stand-ins).
  docker run -d --rm --name "$pg" -e POSTGRES_HOST_AUTH_METHOD=trust -p 127.0.0.1::5432 "${CI_POSTGRES_IMAGE:-postgres:17-bookworm}" >/dev/null
  docker run -d --rm --name "$mq" -p 127.0.0.1::5672 "${CI_RABBITMQ_IMAGE:-rabbitmq:4.1-management}" >/dev/null
  for _ in $(seq 1 90); do
    if docker exec "$pg" pg_isready -U postgres >/dev/null 2>&1 &&
      docker exec "$mq" rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
      pg_port=$(docker port "$pg" 5432/tcp | head -n 1 | sed 's/.*://')
      mq_port=$(docker port "$mq" 5672/tcp | head -n 1 | sed 's/.*://')
      {
        echo "export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:${pg_port}/postgres?sslmode=disable"
        echo "export TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:${mq_port}/"
      } >"$env_file"
      echo "ci-services: PostgreSQL on 127.0.0.1:$pg_port, RabbitMQ on 127.0.0.1:$mq_port"
      exit 0
    fi
    sleep 2
  done
  echo "ci-services: PostgreSQL or RabbitMQ did not become ready in 180s" >&2
  docker logs "$pg" 2>&1 | tail -n 20 >&2 || true
  docker logs "$mq" 2>&1 | tail -n 20 >&2 || true
  exit 1
  ;;
stop)
  docker rm -f "$pg" "$mq" >/dev/null 2>&1 || true
  rm -f "$env_file"
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
