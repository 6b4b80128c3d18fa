#!/usr/bin/env bash
# run.sh's compose phase: the compose file run for real on our dockerd with
# the images run.sh built (no build, no pull), as docs/deployment.md says.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export COMPOSE_FILE=$LIVE_ROOT/docker-compose.yml
# Our own env file instead of the repository's .env (a developer's secrets
# and settings stay out of the test).
export COMPOSE_ENV_FILES=$LIVE_WORK/compose.env
api_port=$(free_port)
ui_port=$(free_port)
cat >"$COMPOSE_ENV_FILES" <<ENV
JWT_SECRET=$(openssl rand -hex 32)
POSTGRES_PASSWORD=$(openssl rand -hex 16)
RABBITMQ_PASSWORD=$(openssl rand -hex 16)
API_PORT=$api_port
RABBITMQ_UI_PORT=$ui_port
ENV

# up_wait PROJECT [SERVICE...]: up --wait with the built images only
# (COMPOSE_PROFILES chooses the profiles).
up_wait() {
  local p=$1
  shift
  COMPOSE_PROJECT_NAME=$p docker compose up --wait --wait-timeout 180 --no-build --pull never "$@" >"$LIVE_LOGS/compose-$p-up.log" 2>&1 || {
    COMPOSE_PROJECT_NAME=$p docker compose ps -a >&2 || true
    COMPOSE_PROJECT_NAME=$p docker compose logs --no-color --tail 30 >&2 || true
    die "compose up --wait ($p) failed (see $LIVE_LOGS/compose-$p-up.log)"
  }
}

# --- offline: the whole stack with the fake stooq ---
log "compose: --profile offline up --wait"
start=$SECONDS
export STOOQ_URL=http://fakestooq:8089 COMPOSE_PROFILES=offline
up_wait sqlive
log "compose: stack healthy in $((SECONDS - start))s"
export COMPOSE_PROJECT_NAME=sqlive
# Runtime hardening as the compose file asks for it.
for svc in apiservice stockservice fakestooq; do
  for cid in $(docker compose ps -q "$svc"); do
    got=$(docker inspect -f '{{.Config.User}} ro={{.HostConfig.ReadonlyRootfs}} caps={{.HostConfig.CapDrop}} sec={{.HostConfig.SecurityOpt}}' "$cid")
    [[ $got == "65532:65532 ro=true caps=[ALL] sec=[no-new-privileges:true]" ]] || die "$svc container $cid: $got"
  done
done
mem=$(docker inspect -f '{{.HostConfig.Memory}}' "$(docker compose ps -q apiservice)")
[ "$mem" = $((256 * 1024 * 1024)) ] || die "apiservice memory limit $mem, want 256M"
n=$(docker compose ps -q stockservice | wc -l)
[ "$n" = 2 ] || die "want 2 stockservice replicas, have $n"
API=http://127.0.0.1:$api_port "$LIVE_ROOT/deploy/live/compose-walkthrough.sh" >"$LIVE_LOGS/compose-walkthrough.log" 2>&1 || {
  cat "$LIVE_LOGS/compose-walkthrough.log" >&2
  die "compose walk-through failed"
}
log "compose: walk-through passed (users, login, quote, history, stats)"
# The offline stack's own stooq check passed against the fake stooq.
[ "$(docker inspect -f '{{.State.ExitCode}}' "$(docker compose ps -aq stooq-check)")" = 0 ] ||
  die "stooq-check failed against the fake stooq: $(docker compose logs --no-color stooq-check | tail -n 3)"
docker compose down -v >"$LIVE_LOGS/compose-down.log" 2>&1 || die "compose down -v failed"
left=$(docker volume ls -q --filter label=com.docker.compose.project=sqlive)
[ -z "$left" ] || die "down -v left volumes: $left"
unset COMPOSE_PROJECT_NAME COMPOSE_PROFILES STOOQ_URL

# --- the real stooq: no network here, so the stock service must say so ---
log "compose: real stooq (no network): up --wait must fail, naming stooq-check"
export COMPOSE_PROJECT_NAME=sqlive-stooq
if docker compose up --wait --wait-timeout 180 --no-build --pull never >"$LIVE_LOGS/compose-stooq-up.log" 2>&1; then
  die "up --wait succeeded although stooq is unreachable"
fi
grep -q "stooq-check.*didn't complete successfully" "$LIVE_LOGS/compose-stooq-up.log" ||
  die "up --wait failed for another reason: $(tail -n 5 "$LIVE_LOGS/compose-stooq-up.log")"
verdict=$(docker compose logs --no-color stooq-check 2>&1)
grep -qiE 'stooq|dial|lookup|no such host|network|unreachable|timeout' <<<"$verdict" || die "stooq-check failed without saying why: $verdict"
log "compose: stooq-check without network: $(grep -iE 'result|error' <<<"$verdict" | head -n 1 | cut -c1-160)"
# The rest of the stack started anyway (the check does not block it).
for cid in $(docker compose ps -q stockservice); do
  [ "$(docker inspect -f '{{.State.Running}}' "$cid")" = true ] || die "a worker is not running beside the failed stooq-check"
done
wait_for 60 "the API (beside the failed stooq-check)" curl -fsS "http://127.0.0.1:$api_port/readyz"
printf '%s\n' 'alice-password-1' | docker compose run --rm -T migrate user add -name alice >/dev/null
token=$(curl -fsS -u alice:alice-password-1 -X POST "http://127.0.0.1:$api_port/api/v1/login" | jq -r .access_token)
body=$(curl -sS -w '\n%{http_code} %{content_type}' -H "Authorization: Bearer $token" "http://127.0.0.1:$api_port/api/v1/stock?q=aapl.us")
status=$(tail -n 1 <<<"$body")
case "$status" in
"502 application/problem+json" | "503 application/problem+json" | "504 application/problem+json") ;;
*) die "real stooq without network: /stock answered '$status', want 502/503/504 problem+json: $body" ;;
esac
log "compose: /stock without network: $status: $(head -n 1 <<<"$body")"
docker compose down -v >>"$LIVE_LOGS/compose-down.log" 2>&1 || die "compose down -v (real stooq) failed"
unset COMPOSE_PROJECT_NAME
