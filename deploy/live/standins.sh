#!/usr/bin/env bash
# Builds the local stand-ins for the images no registry can give us here,
# each under its own stockquote-local/ name (never the tag of an official
# image it is not), and prints the variables that pass them in:
#
#   stockquote-local/debian:bookworm            debootstrap --variant=minbase bookworm
#   stockquote-local/golang:GO_VERSION          that + the host's Go (same version as the
#                                               Dockerfile's GO_VERSION) + a file GOPROXY
#                                               holding the project's modules (go.sum verifies them)
#   stockquote-local/distroless-static:nonroot  scratch + nonroot 65532, CA certificates, tzdata, /tmp
#   stockquote-local/dockerfile-frontend:VER    BuildKit's Dockerfile frontend for `# syntax=`
#   stockquote-local/postgres:15-debian         Debian's PostgreSQL 15, the official image's variables
#   stockquote-local/rabbitmq:3.10-debian       Debian's RabbitMQ 3.10 + management plugin
#
# Each is rebuilt only when its recipe (label stockquote.recipe) changed.
#   deploy/live/standins.sh BIN_DIR >vars.env
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=${1:?usage: standins.sh BIN_DIR}
here="$LIVE_ROOT/deploy/live"
tmp=$(mktemp -d /tmp/stockquote-standins.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
D=$LIVE_DOCKER

go_version=$(sed -n 's/^ARG GO_VERSION=//p' "$LIVE_ROOT/Dockerfile")
host_go=$(go env GOVERSION)
[ "go$go_version" = "$host_go" ] || die "the Dockerfile's GO_VERSION is $go_version but the host has $host_go: the Go stand-in copies the host's Go, so they must match"

# build_if_changed IMAGE RECIPE CONTEXT [docker build flags...]
build_if_changed() {
  local image=$1 recipe=$2 ctx=$3
  shift 3
  if [ "$(image_label "$image" stockquote.recipe)" = "$recipe" ]; then
    return 0
  fi
  log "building stand-in $image"
  DOCKER_BUILDKIT=0 $D build -q --label "stockquote.recipe=$recipe" -t "$image" "$@" "$ctx" >/dev/null
}

# --- Debian ---
debian=stockquote-local/debian:bookworm
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
recipe=$(stamp "debootstrap minbase bookworm $mirror v1")
if [ "$(image_label "$debian" stockquote.recipe)" != "$recipe" ]; then
  rootfs_tar="$LIVE_CACHE/rootfs/bookworm-minbase-$recipe.tar"
  if [ ! -f "$rootfs_tar" ]; then
    log "debootstrap bookworm (minbase) from $mirror"
    mkdir -p "$LIVE_CACHE/rootfs"
    debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
      { tail -n 20 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }
    tar -C "$tmp/rootfs" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$tmp/rootfs"
  fi
  log "importing $debian"
  $D import -c "LABEL stockquote.recipe=$recipe" -c 'CMD ["bash"]' "$rootfs_tar" "$debian" >/dev/null
fi

# --- Go builder: the host's Go + a file module proxy ---
golang=stockquote-local/golang:$go_version
recipe=$(stamp "$host_go" "$LIVE_ROOT/go.sum" "$LIVE_ROOT/go.mod" "$(image_label "$debian" stockquote.recipe)" v1)
if [ "$(image_label "$golang" stockquote.recipe)" != "$recipe" ]; then
  log "filling a module proxy for the Go stand-in"
  mkdir -p "$tmp/go"
  # Seed from the host's module cache; the network proxy fills what is missing.
  (cd "$LIVE_ROOT" && GOFLAGS=-modcacherw GOMODCACHE="$tmp/modcache" \
    GOPROXY="file://$(go env GOMODCACHE)/cache/download,$(go env GOPROXY)" go mod download)
  cp -a "$tmp/modcache/cache/download" "$tmp/go/goproxy"
  rm -rf "$tmp/modcache"
  cp -a "$(go env GOROOT)" "$tmp/go/go"
  cat >"$tmp/go/Dockerfile" <<EOF
FROM $debian
COPY go /usr/local/go
COPY goproxy /goproxy
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOPROXY=file:///goproxy GOSUMDB=off GOTOOLCHAIN=local
WORKDIR /go
EOF
  build_if_changed "$golang" "$recipe" "$tmp/go"
  rm -rf "$tmp/go"
fi

# --- distroless static nonroot ---
distroless=stockquote-local/distroless-static:nonroot
mkdir -p "$tmp/dl/etc/ssl/certs" "$tmp/dl/usr/share" "$tmp/dl/tmp"
chmod 1777 "$tmp/dl/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$tmp/dl/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$tmp/dl/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$tmp/dl/etc/ssl/certs/"
cp -a /usr/share/zoneinfo "$tmp/dl/usr/share/"
cat >"$tmp/dl/Dockerfile" <<'EOF'
FROM scratch
COPY etc /etc
COPY usr /usr
COPY tmp /tmp
USER 65532:65532
EOF
recipe=$(stamp "$tmp/dl/etc/passwd" "$tmp/dl/etc/group" /etc/ssl/certs/ca-certificates.crt "$(cd /usr/share/zoneinfo && find . -type f | sort | head -c 100000)" v1)
build_if_changed "$distroless" "$recipe" "$tmp/dl"

# --- BuildKit's Dockerfile frontend (the Dockerfile's `# syntax=` line) ---
frontend_bin=$(readlink -f "$bin/dockerfile-frontend")
frontend_ver=$(awk '$1 == "require" && $2 == "github.com/moby/buildkit" { print $3 }' "$here/tools/frontend/go.mod")
frontend=stockquote-local/dockerfile-frontend:$frontend_ver
recipe=$(stamp "$frontend_bin")
mkdir -p "$tmp/fe"
cp "$frontend_bin" "$tmp/fe/dockerfile-frontend"
printf 'FROM scratch\nCOPY dockerfile-frontend /bin/dockerfile-frontend\nENTRYPOINT ["/bin/dockerfile-frontend"]\n' >"$tmp/fe/Dockerfile"
build_if_changed "$frontend" "$recipe" "$tmp/fe"

# --- PostgreSQL and RabbitMQ from Debian's packages ---
postgres=stockquote-local/postgres:15-debian
rabbitmq=stockquote-local/rabbitmq:3.10-debian
for svc in postgres rabbitmq; do
  image=${!svc}
  recipe=$(stamp "$(image_label "$debian" stockquote.recipe)" "$here/standins/$svc/Dockerfile" "$here/standins/$svc/entrypoint.sh")
  # --network=host: apt needs the mirror; the containers themselves run
  # on dockerd's isolated bridge.
  build_if_changed "$image" "$recipe" "$here/standins/$svc" --network=host --build-arg "BASE=$debian"
done

cat <<EOF
GO_IMAGE=$golang
RUNTIME_IMAGE=$distroless
BUILDKIT_SYNTAX=$frontend
POSTGRES_IMAGE=$postgres
RABBITMQ_IMAGE=$rabbitmq
EOF
