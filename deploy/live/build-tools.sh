#!/usr/bin/env bash
# Builds the tools `make test-live` needs from the pinned modules under
# deploy/live/tools/ (each has its own go.mod/go.sum, so builds are
# reproducible and the services' go.mod stays small), caches them under
# $STOCKQUOTE_LIVE_CACHE/tools/ keyed by the module's go.mod, go.sum, own
# sources and the Go version, and links them into BIN_DIR. A warm run
# builds nothing.
#
# Every Kubernetes program (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm) comes from the one module tools/kube,
# on one k8s.io version, built by one `go build`: their shared libraries
# compile once, and kubectl matches the API server's version.
#
#   deploy/live/build-tools.sh BIN_DIR [GROUP...]   # default: every group
#   groups: kube compose frontend
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${STOCKQUOTE_LIVE_CACHE:-/var/cache/stockquote-live}
bin=${1:?usage: build-tools.sh BIN_DIR [GROUP...]}
shift
mkdir -p "$bin" "$cache/tools"

# modver DIR MODULE prints the version DIR's go.mod requires of MODULE.
modver() { awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) { print $NF; exit }' "$here/tools/$1/go.mod"; }

# build DIR LDFLAGS NAME=PACKAGE...: one `go build` of every PACKAGE in
# module DIR into a cached directory, each binary linked into BIN_DIR as NAME.
build() {
  local dir=$1 ldflags="-s -w $2"
  shift 2
  local key
  key=$( {
    cat "$here/tools/$dir/go.mod" "$here/tools/$dir/go.sum"
    find "$here/tools/$dir" -name '*.go' -type f | sort | xargs cat
    echo "$* $ldflags"
    go version
  } | sha256sum | cut -c1-16)
  local out="$cache/tools/$dir-$key" p pkgs=()
  if [ ! -d "$out" ]; then
    for p in "$@"; do pkgs+=("${p#*=}"); done
    echo "build-tools: building ${*%%=*} (cold; cached in $out)"
    local start=$SECONDS tmp="$out.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    (cd "$here/tools/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
    # go build names each binary after its package's last path element.
    for p in "$@"; do
      local want=${p%%=*} got
      got=$(basename "${p#*=}")
      [ "$got" != . ] || got=$dir
      [ "$got" = "$want" ] || mv "$tmp/$got" "$tmp/$want"
    done
    mv "$tmp" "$out"
    echo "build-tools: $dir built in $((SECONDS - start))s"
  fi
  for p in "$@"; do ln -sfn "$out/${p%%=*}" "$bin/${p%%=*}"; done
}

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(kube compose frontend)
for g in "${groups[@]}"; do
  case "$g" in
  kube)
    kube=$(modver kube k8s.io/kubernetes)
    cv=k8s.io/component-base/version
    # One -ldflags for all: -X of a symbol a binary lacks is ignored.
    ld="-X $cv.gitVersion=$kube -X $cv.gitMajor=1 -X $cv.gitMinor=$(echo "$kube" | cut -d. -f2)"
    ld+=" -X helm.sh/helm/v3/internal/version.version=$(modver kube helm.sh/helm/v3)"
    ld+=" -X sigs.k8s.io/kwok/pkg/consts.Version=$(modver kube sigs.k8s.io/kwok)"
    build kube "$ld" \
      etcd=./cmd/etcd \
      kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
      kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
      kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
      kubectl=k8s.io/kubernetes/cmd/kubectl \
      kwok=sigs.k8s.io/kwok/cmd/kwok \
      helm=helm.sh/helm/v3/cmd/helm
    ;;
  compose) build compose "-X github.com/docker/compose/v2/internal.Version=$(modver compose github.com/docker/compose/v2)" \
    docker-compose=github.com/docker/compose/v2/cmd ;;
  frontend) build frontend "" dockerfile-frontend=github.com/moby/buildkit/frontend/dockerfile/cmd/dockerfile-frontend ;;
  *) echo "build-tools: unknown group $g" >&2; exit 2 ;;
  esac
done
