#!/usr/bin/env bash
# make test-live: deploy the project for real on this machine, with no
# registry and no internet (Debian, root). Phases (LIVE_PHASES; default
# all of them, "images compose kube argocd jenkins"):
#
#   images   local stand-ins for the base images (standins.sh), then both
#            service images (and fakestooq) built with the project's
#            Dockerfile by `make images` on a real dockerd with BuildKit;
#            checks: non-root numeric user, no shell, size, --version stamp
#   compose  `docker compose --profile offline up --wait`, the docs' compose
#            walk-through (compose-walkthrough.sh), the containers' runtime
#            hardening, `down -v`; then the real-stooq setup, whose stock
#            service must fail clearly (no network here)
#   kube     etcd + kube-apiserver + controller-manager + scheduler + kwok
#            (kube.sh): the chart installed, upgraded and rolled back with
#            `helm upgrade --install --atomic --wait`, bad names refused, the
#            plain manifests applied server-side
#   argocd   ArgoCD's CRDs applied, deploy/argocd validated with
#            --dry-run=server --validate=strict (a misspelt field refused)
#   jenkins  the Jenkinsfile's sh steps in order (jenkins/stub.groovy on
#            Debian's groovy) against this dockerd and API server
#
# Everything it starts is stopped on exit, failure included. Tools and
# images are cached under STOCKQUOTE_LIVE_CACHE (default
# /var/cache/stockquote-live): a warm run builds nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
"$LIVE_ROOT/deploy/live/setup-deps.sh"

phases=" ${LIVE_PHASES:-images compose kube argocd jenkins} "
want() { [[ $phases == *" $1 "* ]]; }

mkdir -p "$LIVE_CACHE" "$LIVE_RUN"
exec 9>"$LIVE_CACHE/lock"
flock -n 9 || die "another make test-live holds $LIVE_CACHE/lock"

work=$(mktemp -d /tmp/stockquote-live.XXXXXX)
export LIVE_LOGS=$work/logs LIVE_WORK=$work
mkdir -p "$LIVE_LOGS"

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  log "cleaning up"
  if [ -S "$LIVE_RUN/docker.sock" ]; then
    # This dockerd is ours alone: every container, network and volume goes
    # (compose's included); the images stay as the cache.
    ids=$($LIVE_DOCKER ps -aq 2>/dev/null)
    [ -z "$ids" ] || $LIVE_DOCKER rm -f -v $ids >/dev/null 2>&1
    $LIVE_DOCKER volume prune -f >/dev/null 2>&1
    $LIVE_DOCKER network prune -f >/dev/null 2>&1
  fi
  # The cluster's state is worth more than its logs' last lines: taken
  # before it stops.
  [ "$rc" -eq 0 ] || [ -z "${LIVE_KUBE_DIAG:-}" ] || "$LIVE_KUBE_DIAG"
  [ -z "${LIVE_KUBE_STOP:-}" ] || "$LIVE_KUBE_STOP"
  stop_pidfile "$LIVE_RUN/dockerd.bgpid" 30
  if [ "$rc" -ne 0 ]; then
    for f in "$LIVE_LOGS"/*.log; do
      [ -s "$f" ] || continue
      echo "----- last lines of $f" >&2
      case "$f" in */kube-state.log) cat "$f" ;; *) tail -n 15 "$f" ;; esac >&2
    done
    log "FAILED (exit $rc); logs kept in $LIVE_LOGS"
    find "$work" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  else
    rm -rf "$work"
    log "all phases passed:$phases"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools: built from deploy/live/tools (cached), Debian's docker CLI,
# and compose v2 as the docker CLI plugin so the docs' `docker compose` works.
bin=$work/bin
groups=()
if want images || want compose || want jenkins; then groups+=(compose frontend); fi
if want kube || want argocd || want jenkins; then groups+=(kube); fi
"$LIVE_ROOT/deploy/live/build-tools.sh" "$bin" "${groups[@]}"
ln -s "$LIVE_DOCKER" "$bin/docker"
export DOCKER_CONFIG=$work/docker-config
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -s "$(readlink -f "$bin/docker-compose")" "$DOCKER_CONFIG/cli-plugins/docker-compose"
export PATH="$bin:$PATH"
if want images || want compose || want jenkins; then
  docker compose version >/dev/null || die "docker compose (v2 plugin) does not run"
fi

commit=$(git -C "$LIVE_ROOT" rev-parse --short=12 HEAD)
export IMAGE_REGISTRY=stockquote-live IMAGE_TAG="live-$commit" COMMIT=$commit
if want images || want compose || want jenkins; then
  start_dockerd
  # A previous run killed hard may have left containers in the cached data root.
  ids=$(docker ps -aq)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  "$LIVE_ROOT/deploy/live/standins.sh" "$bin" >"$work/standins.env"
  set -a
  . "$work/standins.env"
  set +a
fi

# === images ===
if want images || want compose || want jenkins; then
  log "building the service images with the project's Dockerfile"
  build_flags="--build-arg GO_IMAGE=$GO_IMAGE --build-arg RUNTIME_IMAGE=$RUNTIME_IMAGE --build-arg BUILDKIT_SYNTAX=$BUILDKIT_SYNTAX"
  make -C "$LIVE_ROOT" --no-print-directory images IMAGE_SERVICES="apiservice stockservice fakestooq" \
    VERSION="$IMAGE_TAG" DOCKER_BUILD_FLAGS="$build_flags" >"$LIVE_LOGS/images.log" 2>&1 ||
    die "make images failed (see $LIVE_LOGS/images.log)"
fi
if want images; then
  "$LIVE_ROOT/deploy/live/check-images.sh"
fi

# === compose ===
if want compose; then
  "$LIVE_ROOT/deploy/live/compose.sh"
fi

# === kube, argocd, jenkins ===
if want kube || want argocd || want jenkins; then
  . "$LIVE_ROOT/deploy/live/kube.sh"
  kube_start
  if want kube; then kube_tests; fi
  if want argocd; then argocd_tests; fi
  if want jenkins; then jenkins_tests; fi
  kube_node_steady
fi
