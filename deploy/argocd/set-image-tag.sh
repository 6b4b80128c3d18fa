#!/usr/bin/env bash
# Sets the image tag ArgoCD deploys (the Jenkinsfile's GitOps mode):
#   deploy/argocd/set-image-tag.sh TAG [APPLICATION_FILE]
# It rewrites the one line marked "# image-tag:" and fails unless exactly
# one line changed to the new tag.
set -euo pipefail
tag=${1:?usage: set-image-tag.sh TAG [APPLICATION_FILE]}
file=${2:-$(dirname "$0")/application.yaml}
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "set-image-tag: '$tag' is not a valid image tag" >&2; exit 1; }
n=$(grep -c '^ *tag: .*# image-tag:' "$file" || true)
[ "$n" = 1 ] || { echo "set-image-tag: want one 'tag: ... # image-tag:' line in $file, found $n" >&2; exit 1; }
sed -i -E "s/^( *tag: ).*( # image-tag:.*)$/\1\"$tag\"\2/" "$file"
grep -q "^ *tag: \"$tag\" # image-tag:" "$file" || { echo "set-image-tag: $file was not updated" >&2; exit 1; }
echo "set-image-tag: $file now deploys $tag"
