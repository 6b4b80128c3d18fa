#!/usr/bin/env bash
# Checks the service images `make images` built (run.sh's images phase):
# numeric non-root user, no shell or other program besides /service, a
# size bound, and the version stamp printed by --version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# MAX_IMAGE_MB: the binary plus the distroless base (CA certificates, tzdata).
max_mb=${MAX_IMAGE_MB:-60}
for s in apiservice stockservice; do
  img=$IMAGE_REGISTRY/$s:$IMAGE_TAG
  user=$(docker image inspect -f '{{.Config.User}}' "$img")
  [ "$user" = 65532:65532 ] || die "$img runs as user '$user', want 65532:65532"
  entry=$(docker image inspect -f '{{json .Config.Entrypoint}}' "$img")
  [ "$entry" = '["/service"]' ] || die "$img entrypoint $entry, want [\"/service\"]"
  size=$(docker image inspect -f '{{.Size}}' "$img")
  ((size <= max_mb * 1024 * 1024)) || die "$img is $((size / 1024 / 1024)) MB, over $max_mb MB"
  if out=$(docker run --rm --entrypoint /bin/sh "$img" -c 'echo shell' 2>&1); then
    die "$img has a shell: $out"
  fi
  # Nothing executable but /service in the file system.
  cid=$(docker create "$img")
  # (docker create adds .dockerenv, /dev and /etc/hosts-like files itself.)
  programs=$(docker export "$cid" | tar -tvf - | awk '$1 ~ /^-..x/ { print $NF }' |
    grep -vxE 'service|\.dockerenv|dev/.*|etc/(hostname|hosts|resolv\.conf)' || true)
  docker rm "$cid" >/dev/null
  [ -z "$programs" ] || die "$img holds programs besides /service: $programs"
  version=$(docker run --rm "$img" --version)
  [[ $version == *"$IMAGE_TAG"* && $version == *"$COMMIT"* ]] || die "$img --version printed '$version', want $IMAGE_TAG and $COMMIT in it"
  log "image $img: user 65532, no shell, $((size / 1024 / 1024)) MB, --version: $version"
done
