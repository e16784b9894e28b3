#!/usr/bin/env bash
# `make vertex-simulate CONTAINERS=1` and `make test-containers`: the training pipeline with every
# step in its OCI image (podman), the data, artifacts and registry on a real S3 server
# (SeaweedFS on 127.0.0.1), then pm-serve in its image answering predictions from the promoted
# model, scraped by a real Prometheus with deploy/monitoring's config and rules; then the
# monitoring pipeline (pm-monitor's image, and on a drift alert the retraining job in the
# pm-pipeline image). Checks every stage and fails loudly; ends with a summary.
#
# Environment: PM_CONTAINERS_MACHINES (default 100, the full default data set), PM_KEEP=1 keeps
# the serving container and the S3 server running for you to explore.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
MACHINES="${PM_CONTAINERS_MACHINES:-100}"
say() { printf '\ncontainers: %s\n' "$*" >&2; }
fail() { printf 'containers: FAILED: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
T0=$SECONDS

scripts/images.sh
cargo build --locked -q --bin pm-orchestrator --bin pm-datagen

started_s3=0
SERVE_NAME="pm-serve-sim-$$"
cleanup() {
  if [[ ${PM_KEEP:-0} == 1 ]]; then return; fi
  podman rm --force --time 2 "$SERVE_NAME" >/dev/null 2>&1 || true
  if [[ -n ${REG_PID:-} ]]; then kill "$REG_PID" 2>/dev/null || true; rm -rf "$REG_DIR"; fi
  if [[ $started_s3 == 1 ]]; then scripts/s3-server.sh stop || true; fi
}
on_exit cleanup
# A run killed outright (SIGKILL) cannot clean up: remove the serving containers of runs whose
# script is gone (the name carries its PID).
for c in $(podman ps -a --format '{{.Names}}' | grep '^pm-serve-sim-[0-9]*$' || true); do
  pid="${c##*-}"
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "containers: removing $c, left by a run that was killed" >&2
    podman rm --force --time 2 "$c" >/dev/null 2>&1 || true
  fi
done
if [[ -z "${PM_TEST_S3_URL:-}" ]]; then
  eval "$(scripts/s3-server.sh start)"
  started_s3=1
fi
BUCKET="$PM_TEST_S3_URL/containers-$(date +%s)-$$"

say "data: $MACHINES machines x 8,761 hours -> $BUCKET/raw"
target/debug/pm-datagen --machines "$MACHINES" --output-uri "$BUCKET/raw" >/dev/null

say "training pipeline, every step in its image (runner podman)"
train() { # extra orchestrator args...
  target/debug/pm-orchestrator run pipelines/training.yaml --runner podman --root "$BUCKET" \
    --param "data_uri=$BUCKET/raw" --param "registry_uri=$BUCKET/registry" "$@"
}
train --run-id-output-file "$ROOT/.cache/containers-run-id" | tee "$ROOT/.cache/containers-train.txt"
grep -q "deploy .*succeeded" "$ROOT/.cache/containers-train.txt" || fail "the deploy step did not run (model not blessed?)"

# A container of this run that a killed orchestrator would have left running (a stand-in under
# the name the runner gives the train step's first attempt): resuming the run removes it.
RUN_ID="$(cat "$ROOT/.cache/containers-run-id")"
ORPHAN="pm-$(echo "$RUN_ID" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9-]/-/g')-train-1"
say "resume $RUN_ID: removes $ORPHAN, left running"
podman run -d --name "$ORPHAN" --network host "localhost/pm/pm-serve:$PM_VERSION" \
  --registry-uri memory://none --host 127.0.0.1 --port "$(free_port)" >/dev/null
train --resume "$RUN_ID" > "$ROOT/.cache/containers-resume.txt" 2>&1 || { cat "$ROOT/.cache/containers-resume.txt" >&2; fail "resume"; }
if podman container exists "$ORPHAN"; then podman rm --force --time 0 "$ORPHAN" >/dev/null; fail "resume left $ORPHAN running"; fi
grep -q "Removed a container left running" "$ROOT/.cache/containers-resume.txt" || fail "resume did not say it removed $ORPHAN"

PORT=$(free_port)
say "pm-serve in its image on 127.0.0.1:$PORT (registry $BUCKET/registry)"
podman run -d --name "$SERVE_NAME" --network host --health-interval disable \
  -e AIP_HTTP_PORT="$PORT" -e PM_HOST=127.0.0.1 -e PM_REGISTRY_URI="$BUCKET/registry" -e PM_PRIME_FROM="$BUCKET/raw" \
  -e AWS_ENDPOINT -e AWS_ALLOW_HTTP -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e RUST_LOG=info \
  "localhost/pm/pm-serve:$PM_VERSION" >/dev/null
ready=0
for _ in $(seq 1 150); do
  if curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null; then ready=1; break; fi
  sleep 0.2
done
[[ $ready == 1 ]] || { podman logs "$SERVE_NAME" >&2; fail "pm-serve did not become ready"; }
podman healthcheck run "$SERVE_NAME" >/dev/null || fail "the image's HEALTHCHECK reports unhealthy"
[[ $(podman inspect --format '{{.Config.User}}' "$SERVE_NAME") == 65534:65534 ]] || fail "pm-serve does not run as 65534"
answer=$(curl -sf -X POST -H 'content-type: application/json' -d '{"machineID": 1}' "http://127.0.0.1:$PORT/predict") \
  || fail "POST /predict failed"
echo "$answer"
python3 - "$answer" <<'PY' || fail "unexpected prediction"
import json, sys
a = json.loads(sys.argv[1])
assert 0.0 <= a["failure_probability"] <= 1.0, a
assert a["model_version"] == "v1" and a["machineID"] == 1 and a["mode"] == "state", a
PY

# Two batches of the same fleet, January 2016 (after the training year): as generated, and with
# every voltage 15 % higher.
monitor() { # name extra-datagen-args...
  local name=$1; shift
  target/debug/pm-datagen --machines "$MACHINES" --hours 720 --start "2016-01-01 06:00:00" \
    --output-uri "$BUCKET/batch-$name" "$@" >/dev/null
  target/debug/pm-orchestrator run pipelines/monitoring.yaml --runner podman --root "$BUCKET" \
    --param "batch_uri=$BUCKET/batch-$name" --param "data_uri=$BUCKET/raw" \
    --param "registry_uri=$BUCKET/registry" --param "pipeline_root=$BUCKET" | tee "$ROOT/.cache/containers-monitor-$name.txt"
}
say "a real Prometheus scraping pm-serve's container with deploy/monitoring (config + alert rules)"
command -v prometheus >/dev/null || apt_install prometheus
PROM_PORT=$(free_port)
PROM_DIR="$(mktemp -d)"
cp deploy/monitoring/alerts.yml "$PROM_DIR/"
sed -e "s/127.0.0.1:8080/127.0.0.1:$PORT/" -e "s/scrape_interval: 15s/scrape_interval: 1s/" \
  -e "s/evaluation_interval: 15s/evaluation_interval: 1s/" deploy/monitoring/prometheus.yml > "$PROM_DIR/prometheus.yml"
prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" > "$PROM_DIR/prometheus.log" 2>&1 &
PROM_PID=$!
promql() { curl -sf --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'; }
scraped=0
for _ in $(seq 1 100); do
  if [[ $(promql 'up{job="pm-serve"}' 2>/dev/null) == 1 && $(promql 'pm_model_loaded' 2>/dev/null) == 1 ]]; then scraped=1; break; fi
  sleep 0.3
done
[[ $scraped == 1 ]] || { cat "$PROM_DIR/prometheus.log" >&2; kill $PROM_PID; fail "Prometheus did not scrape pm-serve"; }
rules=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/rules" | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
[[ $rules == 7 ]] || fail "Prometheus loaded $rules alert rules, expected 7"
echo "prometheus: up=1, pm_model_loaded=1, pm_model_info version=$(curl -sf --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=pm_model_info' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["metric"]["version"])'), $rules alert rules loaded"
kill $PROM_PID; wait $PROM_PID 2>/dev/null || true; rm -rf "$PROM_DIR"

say "monitoring pipeline, a batch as generated: pm-monitor must not alert, retraining is skipped"
monitor calm
grep -q "retrain .*skipped" "$ROOT/.cache/containers-monitor-calm.txt" || fail "retraining ran on an undrifted batch"
say "monitoring pipeline, every voltage 15 % higher: the alert runs the training pipeline in pm-pipeline"
monitor drift --sensor-scale volt=1.15
grep -q "retrain .*succeeded" "$ROOT/.cache/containers-monitor-drift.txt" || fail "retraining did not run on a drifted batch"

say "push-images to a real registry (Debian's docker-registry on 127.0.0.1), then pull pm-serve back"
command -v docker-registry >/dev/null || apt_install docker-registry
REG_DIR="$(mktemp -d)"
REG_PORT=$(free_port)
cat > "$REG_DIR/config.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $REG_DIR/data}}
http: {addr: "127.0.0.1:$REG_PORT"}
YML
docker-registry serve "$REG_DIR/config.yml" > "$REG_DIR/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$REG_PORT/v2/" >/dev/null && break; sleep 0.1; done
REG="127.0.0.1:$REG_PORT"
PM_REGISTRY_TLS_VERIFY=false scripts/push-images.sh "$REG" > "$REG_DIR/push.log" 2>&1 \
  || { cat "$REG_DIR/push.log" "$REG_DIR/registry.log" >&2; fail "push-images failed"; }
for img in "${PM_IMAGES[@]}"; do
  curl -sf "http://$REG/v2/pm/pm-$img/tags/list" | grep -q "\"$PM_VERSION\"" \
    || fail "the registry has no pm/pm-$img:$PM_VERSION"
done
podman rmi --ignore "$REG/pm/pm-serve:$PM_VERSION" >/dev/null
podman pull -q --tls-verify=false "$REG/pm/pm-serve:$PM_VERSION" >/dev/null || fail "pulling pm-serve back failed"
[[ $(podman image inspect --format '{{.Id}}' "$REG/pm/pm-serve:$PM_VERSION") == \
   $(podman image inspect --format '{{.Id}}' "localhost/pm/pm-serve:$PM_VERSION") ]] \
  || fail "the pulled pm-serve is not the image pushed"
pulled_version=$(podman run --rm "$REG/pm/pm-serve:$PM_VERSION" --version)
podman rmi "$REG/pm/pm-serve:$PM_VERSION" >/dev/null
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; rm -rf "$REG_DIR"; REG_PID=
echo "registry: ${#PM_IMAGES[@]} images pushed as $REG/pm/<image>:$PM_VERSION; pm-serve pulled back, same image, prints: $pulled_version"

say "SIGTERM: podman stop ends pm-serve cleanly"
t=$SECONDS
podman stop --time 10 "$SERVE_NAME" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$SERVE_NAME")
[[ $code == 0 && $((SECONDS - t)) -lt 5 ]] || fail "pm-serve exited $code after $((SECONDS - t)) s"
podman logs "$SERVE_NAME" 2>&1 | grep -q "pm-serve stopped" || fail "no shutdown summary in the logs"

say "done in $((SECONDS - T0)) s: the step images and pm-pipeline ran the pipelines on S3 ($BUCKET), pm-serve answered from its image, stopped cleanly on SIGTERM"
