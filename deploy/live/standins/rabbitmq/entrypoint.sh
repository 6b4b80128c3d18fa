#!/bin/bash
# Honours the official rabbitmq image's RABBITMQ_DEFAULT_USER and
# RABBITMQ_DEFAULT_PASS (default guest/guest, allowed from any address).
set -euo pipefail
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
{
  echo "loopback_users.guest = false"
  echo "listeners.tcp.default = 5672"
  echo "management.tcp.port = 15672"
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
} >/etc/rabbitmq/rabbitmq.conf
export HOME=/var/lib/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
