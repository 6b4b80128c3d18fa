#!/usr/bin/env bash
# Installs what `make test-live` needs on a fresh Debian/Ubuntu machine
# (`make test-live` runs it first): Debian's docker.io (dockerd and the
# docker 20.10 CLI with BuildKit built in), debootstrap (the stand-in base
# images), groovy (the Jenkinsfile stub), jq, curl, openssl, git and
# python3. etcd, the Kubernetes control plane, kubectl, helm, kwok and
# compose build from the Go module proxy (deploy/live/build-tools.sh). Not
# root, or not apt: it changes nothing and stops at once with the command
# to run, so no phase fails late for a missing tool.
set -euo pipefail

need=()
[ -x /usr/bin/docker ] && command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
for p in debootstrap:debootstrap groovy:groovy jq:jq curl:curl openssl:openssl git:git python3:python3; do
  command -v "${p#*:}" >/dev/null 2>&1 || need+=("${p%%:*}")
done
command -v go >/dev/null 2>&1 || { echo "error: make test-live needs Go (the Dockerfile's GO_VERSION) on PATH" >&2; exit 1; }

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing for make test-live: ${need[*]}" >&2
    echo "run (Debian/Ubuntu, as root): apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: make test-live needs root (its own dockerd, debootstrap); run: sudo make test-live" >&2
  exit 1
fi
