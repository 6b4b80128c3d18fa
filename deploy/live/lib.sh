# Shared helpers of deploy/live/*.sh (sourced, not run).
#
# LIVE_CACHE   tools, the Debian root file system and dockerd's data root
#              (images survive between runs: a warm run rebuilds nothing)
# LIVE_RUN     sockets and pid files of what a run starts

LIVE_CACHE=${STOCKQUOTE_LIVE_CACHE:-/var/cache/stockquote-live}
LIVE_RUN=${STOCKQUOTE_LIVE_RUN:-/run/stockquote-live}
LIVE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The docker CLI with BuildKit built in (Debian's docker.io 20.10): the
# machine image's /usr/local/bin/docker has no buildx plugin.
LIVE_DOCKER=${STOCKQUOTE_LIVE_DOCKER:-/usr/bin/docker}
export DOCKER_HOST="unix://$LIVE_RUN/docker.sock"
export DOCKER_BUILDKIT=1

log() { printf '%s live: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}

# stamp prints a short hash of its arguments' contents (files) or text.
stamp() {
  local a
  for a in "$@"; do
    if [ -f "$a" ]; then cat "$a"; else printf '%s\n' "$a"; fi
  done | sha256sum | cut -c1-16
}

# image_label IMAGE LABEL prints the image's label, or nothing.
image_label() {
  $LIVE_DOCKER image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# free_port prints a TCP port nothing listens on (127.0.0.1).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS WHAT COMMAND... retries COMMAND once a second.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local i
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$what not ready after ${secs}s"
}

# start_dockerd starts a dockerd of our own: its own data root (the image
# cache), socket and exec root, and no iptables or IP forwarding, so no
# container can route off the host. Its pid goes to $LIVE_RUN/dockerd.pid.
start_dockerd() {
  mkdir -p "$LIVE_RUN" "$LIVE_CACHE/docker"
  if [ -S "$LIVE_RUN/docker.sock" ] && $LIVE_DOCKER version >/dev/null 2>&1; then
    die "a dockerd already answers on $LIVE_RUN/docker.sock (another make test-live?)"
  fi
  rm -f "$LIVE_RUN/docker.sock"
  log "starting dockerd (data root $LIVE_CACHE/docker)"
  dockerd --iptables=false --ip-forward=false --ip-masq=false \
    --data-root "$LIVE_CACHE/docker" --exec-root "$LIVE_RUN/exec" \
    --pidfile "$LIVE_RUN/dockerd.pid" --host "$DOCKER_HOST" \
    >"$LIVE_LOGS/dockerd.log" 2>&1 &
  echo $! >"$LIVE_RUN/dockerd.bgpid"
  wait_for 60 dockerd $LIVE_DOCKER version
}

# stop_pidfile FILE [SECONDS] stops the process whose pid FILE holds.
stop_pidfile() {
  local f=$1 secs=${2:-20} pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  rm -f "$f"
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
}
