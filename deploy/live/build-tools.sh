#!/usr/bin/env bash
# Builds the tools `make test-live` needs from the pinned modules under
# deploy/live/tools/ (each has its own go.mod/go.sum, so builds are
# reproducible and the services' go.mod stays small), caches each binary
# under $STOCKQUOTE_LIVE_CACHE/tools/ keyed by its module's go.mod, go.sum
# and the Go version, and links them into BIN_DIR. A warm run builds nothing.
#
#   deploy/live/build-tools.sh BIN_DIR [TOOL...]   # default: every tool
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${STOCKQUOTE_LIVE_CACHE:-/var/cache/stockquote-live}
bin=${1:?usage: build-tools.sh BIN_DIR [TOOL...]}
shift
mkdir -p "$bin" "$cache/tools"

# modver DIR MODULE prints the version DIR's go.mod requires of MODULE.
modver() { awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) { print $NF; exit }' "$here/tools/$1/go.mod"; }

# build DIR NAME PACKAGE [LDFLAGS]
build() {
  local dir=$1 name=$2 pkg=$3 ldflags="-s -w ${4:-}"
  local key
  key=$( { cat "$here/tools/$dir/go.mod" "$here/tools/$dir/go.sum"; echo "$pkg $ldflags"; go version; } | sha256sum | cut -c1-16)
  local out="$cache/tools/$name-$key"
  if [ ! -x "$out" ]; then
    echo "build-tools: building $name (cold; cached as $out)"
    local start=$SECONDS
    (cd "$here/tools/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp.$$" "$pkg")
    mv "$out.tmp.$$" "$out"
    echo "build-tools: $name built in $((SECONDS - start))s"
  fi
  ln -sfn "$out" "$bin/$name"
}

kube=$(modver kube k8s.io/kubernetes)
kminor=$(echo "$kube" | cut -d. -f2)
kldflags="-X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kminor"

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(docker-compose dockerfile-frontend helm kube-apiserver kube-controller-manager kube-scheduler kwok argocheck)
for t in "${tools[@]}"; do
  case "$t" in
  docker-compose) build compose docker-compose github.com/docker/compose/v2/cmd \
    "-X github.com/docker/compose/v2/internal.Version=$(modver compose github.com/docker/compose/v2)" ;;
  dockerfile-frontend) build frontend dockerfile-frontend github.com/moby/buildkit/frontend/dockerfile/cmd/dockerfile-frontend ;;
  helm) build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$(modver helm helm.sh/helm/v3)" ;;
  kube-apiserver | kube-controller-manager | kube-scheduler) build kube "$t" "k8s.io/kubernetes/cmd/$t" "$kldflags" ;;
  kwok) build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$(modver kwok sigs.k8s.io/kwok)" ;;
  argocheck) build argocheck argocheck . ;;
  *) echo "build-tools: unknown tool $t" >&2; exit 2 ;;
  esac
done
