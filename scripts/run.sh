#!/usr/bin/env bash
# `make run`: starts the real dependencies, builds and starts the three
# services with configs/, sends demo events, shows them in ClickHouse, and
# keeps everything running until Ctrl-C, which stops what this script started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOG_DIR=${DEPS_DIR:-$ROOT/.deps}/run
EVENTS=${EVENTS:-300}
mkdir -p "$LOG_DIR" bin

# What was running before is left running; what this script starts, it stops.
started_deps=()
for dep in kafka clickhouse; do
  scripts/deps.sh running "$dep" || started_deps+=("$dep")
done
pids=()
cleanup() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    echo
    echo "stopping services"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
  for dep in "${started_deps[@]}"; do scripts/deps.sh down "$dep"; done
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

scripts/deps.sh up

echo "building services"
go build -o bin/ ./collector ./enricher ./sink ./scripts/loadgen

# A development setup: the services accept the repository's demo write keys
# and the development keys and token below only with dev_mode on (each
# warns about it at start-up). Production sets none of this: its keys come
# from a secret store (ENRICHER_PSEUDONYM_KEY(_FILE) and the like).
export COLLECTOR_DEV_MODE=true ENRICHER_DEV_MODE=true SINK_DEV_MODE=true
export ENRICHER_PSEUDONYM_KEY_FILE=${ENRICHER_PSEUDONYM_KEY_FILE:-configs/dev-pseudonym.key}
export ENRICHER_EXPORT_PSEUDONYM_KEY_FILE=${ENRICHER_EXPORT_PSEUDONYM_KEY_FILE:-configs/dev-export.key}
export COLLECTOR_PRIVACY_PSEUDONYM_KEY_FILE=${COLLECTOR_PRIVACY_PSEUDONYM_KEY_FILE:-configs/dev-pseudonym.key}
export COLLECTOR_PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY_FILE=${COLLECTOR_PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY_FILE:-configs/dev-export.key}
# The privacy admin API with the development operator (token in
# configs/dev-operator.token): the shipped config with it switched on. It
# listens on privacy.listen, 127.0.0.1:9105, not on the admin port.
sed 's|^  operators: \[\]$|  operators: [{name: dev, token_file: configs/dev-operator.token}]|' \
  configs/collector.yaml >"$LOG_DIR/collector.yaml"
grep -q 'name: dev, token_file' "$LOG_DIR/collector.yaml" || { echo "run: could not switch on the dev operator in $LOG_DIR/collector.yaml" >&2; exit 1; }
# Each service in its own session: Ctrl-C reaches this script alone, which
# then stops them in order, instead of racing them to the exit.
# The second sink loads the export destination (events.export.intl).
for svc in sink:sink sink:sink-intl enricher:enricher collector:collector; do
  bin=${svc%%:*} name=${svc#*:}
  config=configs/$name.yaml
  [[ $name == collector ]] && config=$LOG_DIR/collector.yaml
  setsid bin/$bin --config "$config" >"$LOG_DIR/$name.log" 2>&1 &
  pids+=($!)
  echo "started $name (pid $!, log $LOG_DIR/$name.log)"
done

wait_ready() {
  local name=$1 url=$2
  for _ in $(seq 1 60); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    sleep 1
  done
  tail -n 20 "$LOG_DIR/$name.log" >&2
  echo "run: $name is not ready at $url after 60s; see $LOG_DIR/$name.log" >&2
  exit 1
}
wait_ready collector http://127.0.0.1:9101/readyz
wait_ready enricher http://127.0.0.1:9102/readyz
wait_ready sink http://127.0.0.1:9103/readyz
wait_ready sink-intl http://127.0.0.1:9104/readyz

run_id="demo-$(date +%s)"
bin/loadgen -url http://127.0.0.1:8080 -write-key demo-write-key -consent-write-key demo-backend-write-key -events "$EVENTS" -run "$run_id"

count_query="SELECT count() FROM analytics_cn.events WHERE visitParamExtractString(properties, 'run') = '$run_id'"
for i in $(seq 1 60); do
  n=$(clickhouse-client --query "$count_query" 2>/dev/null || echo 0)
  [[ $n -ge $EVENTS ]] && break
  [[ $i -eq 60 ]] && { echo "run: only $n of $EVENTS events reached ClickHouse after 60s; see $LOG_DIR/*.log" >&2; exit 1; }
  sleep 1
done

echo
echo "All $EVENTS demo events are in ClickHouse. Events by type and name:"
clickhouse-client --format PrettyCompact --query "
  SELECT type, event, count() AS events, uniqExact(subject) AS subjects
  FROM analytics_cn.events
  WHERE visitParamExtractString(properties, 'run') = '$run_id'
  GROUP BY type, event ORDER BY events DESC"
echo "Three rows as stored (pseudonyms, truncated IPs, no raw identifiers):"
clickhouse-client --format PrettyCompact --query "
  SELECT message_id, type, event, subject, device_pseudonym, ip_truncated, prop_keys, prop_values
  FROM analytics_cn.events
  WHERE visitParamExtractString(properties, 'run') = '$run_id'
  LIMIT 3"
cat <<EOF

Collector API:   http://127.0.0.1:8080/v1/batch  (write key: demo-write-key)
Metrics:         http://127.0.0.1:9101/metrics  (collector)
                 http://127.0.0.1:9102/metrics  (enricher)
                 http://127.0.0.1:9103/metrics  (sink)
                 http://127.0.0.1:9104/metrics  (sink-intl: the export destination)
Query:           clickhouse-client --query 'SELECT count() FROM analytics_cn.events'
                 clickhouse-client --query 'SELECT count() FROM analytics_intl.events' (cross-border consent only)
Privacy API:     curl -H "Authorization: Bearer \$(cat configs/dev-operator.token)" \\
                   http://127.0.0.1:9105/v1/privacy/exports -d '{"userId":"<a userId>"}'
                 (and /v1/privacy/erasures, /v1/privacy/erasures/<requestId>: see README)
Logs:            $LOG_DIR/
Dev mode:        on: the services accept the repository's demo write keys,
                 development keys and token (README, "Development secrets")

Running. Press Ctrl-C to stop.
EOF
wait -n "${pids[@]}" || true
echo "run: a service exited on its own; see $LOG_DIR/*.log" >&2
exit 1
