#!/usr/bin/env bash
# The compose walk-through of docs/deployment.md, as written there (users,
# login, quote, history, stats), against a stack `docker compose up` started.
# API is the API's base URL (the docs' http://127.0.0.1:8080).
#
#   API=http://127.0.0.1:8080 deploy/live/compose-walkthrough.sh
set -euo pipefail
API=${API:-http://127.0.0.1:8080}
fail() {
  echo "compose walk-through: FAIL: $*" >&2
  exit 1
}

printf '%s\n' 'admin-password-1' | docker compose run --rm -T migrate user add -name admin -superuser
printf '%s\n' 'alice-password-1' | docker compose run --rm -T migrate user add -name alice -email alice@example.com

TOKEN=$(curl -fsS -u alice:alice-password-1 -X POST "$API/api/v1/login" | jq -r .access_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || fail "alice's login gave no access_token"

quote=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$API/api/v1/stock?q=aapl.us")
[ "$(jq -r '.symbol | ascii_upcase' <<<"$quote")" = AAPL.US ] || fail "quote for aapl.us: $quote"

history=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$API/api/v1/history")
[ "$(jq -r '.[0].symbol | ascii_upcase' <<<"$history")" = AAPL.US ] || fail "alice's history lacks the quote: $history"

ADMIN=$(curl -fsS -u admin:admin-password-1 -X POST "$API/api/v1/login" | jq -r .access_token)
stats=$(curl -fsS -H "Authorization: Bearer $ADMIN" "$API/api/v1/stats")
jq -e 'tostring | test("AAPL.US"; "i")' <<<"$stats" >/dev/null || fail "stats do not count aapl.us: $stats"

# A user is not a superuser: /stats is 403 for alice, as a problem+json.
code=$(curl -sS -o /dev/null -w '%{http_code} %{content_type}' -H "Authorization: Bearer $TOKEN" "$API/api/v1/stats")
[ "$code" = "403 application/problem+json" ] || fail "alice's /stats: $code, want 403 application/problem+json"
echo "compose walk-through: users, login, quote, history and stats OK"
