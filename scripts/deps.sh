#!/usr/bin/env bash
# Starts, stops and reports the real dependencies the pipeline and its tests
# use: one Apache Kafka node (KRaft) and one ClickHouse server, both on
# loopback. Idempotent: `up` installs what is missing and starts only what is
# not already answering; `down` stops only what `up` started.
#
#   scripts/deps.sh up|down|status
#
# Everything it writes (jars, data, logs, pid files) is under $DEPS_DIR
# (default .deps/ in the repository, ignored by git).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS_DIR=${DEPS_DIR:-$ROOT/.deps}
KAFKA_DIR=$DEPS_DIR/kafka
CH_DIR=$DEPS_DIR/clickhouse
KAFKA_CLUSTER_ID=${KAFKA_CLUSTER_ID:-cGlwZWxpbmUtbG9jYWwtMQ}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
KAFKA_ADDR=127.0.0.1:9092
CH_NATIVE_PORT=9000
CH_HTTP_PORT=8123
WAIT_SECONDS=${WAIT_SECONDS:-120}

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- ClickHouse ---------------------------------------------------------

ch_install() {
  if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null; then
    return
  fi
  log "installing clickhouse-server and clickhouse-client from Debian"
  apt-get update -qq
  # The package's init script cannot start a service in a container; we start
  # the server ourselves below.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

ch_config() {
  mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}
  # The stock config, with every path moved under $CH_DIR and loopback only.
  sed -e "s#/var/lib/clickhouse/#$CH_DIR/data/#g" \
      -e "s#$CH_DIR/data/tmp/#$CH_DIR/tmp/#g" \
      -e "s#$CH_DIR/data/user_files/#$CH_DIR/user_files/#g" \
      -e "s#$CH_DIR/data/format_schemas/#$CH_DIR/format_schemas/#g" \
      -e "s#/var/log/clickhouse-server/#$CH_DIR/log/#g" \
      -e "s#<listen_host>::1</listen_host>##" \
      /etc/clickhouse-server/config.xml >"$CH_DIR/config.xml"
  sed -e 's#<ip>::/0</ip>#<ip>127.0.0.1</ip><ip>::1</ip>#' \
      /etc/clickhouse-server/users.xml >"$CH_DIR/users.xml"
  chown -R clickhouse:clickhouse "$CH_DIR"
  runuser -u clickhouse -- test -w "$CH_DIR/data" ||
    die "the clickhouse user cannot reach $CH_DIR (a parent folder is not searchable); set DEPS_DIR to a folder it can reach"
}

ch_answers() { clickhouse-client --port "$CH_NATIVE_PORT" --query 'SELECT 1' >/dev/null 2>&1; }

ch_up() {
  ch_install
  if ch_answers; then
    log "clickhouse already answering on 127.0.0.1:$CH_NATIVE_PORT"
    return
  fi
  ch_config
  log "starting clickhouse (log: $CH_DIR/log/clickhouse-server.log)"
  # The server refuses data owned by another user, so it runs as the
  # package's clickhouse user; runuser keeps it in our process group.
  runuser -u clickhouse -- clickhouse-server --config-file="$CH_DIR/config.xml" \
    >"$CH_DIR/log/stdout.log" 2>&1 &
  echo $! >"$CH_DIR/clickhouse.pid"
  local waited=0
  until ch_answers; do
    if ! pid_alive "$CH_DIR/clickhouse.pid"; then
      tail -n 20 "$CH_DIR/log/clickhouse-server.err.log" "$CH_DIR/log/stdout.log" >&2 2>/dev/null || true
      die "clickhouse exited during start-up; see $CH_DIR/log/clickhouse-server.err.log"
    fi
    ((waited++ < WAIT_SECONDS)) || die "clickhouse did not answer SELECT 1 within ${WAIT_SECONDS}s; see $CH_DIR/log/clickhouse-server.err.log"
    sleep 1
  done
  log "clickhouse $(clickhouse-client --query 'SELECT version()') up on 127.0.0.1:$CH_NATIVE_PORT (http $CH_HTTP_PORT)"
}

# --- Kafka --------------------------------------------------------------

kafka_fetch() {
  if [[ -f $KAFKA_DIR/libs/.complete ]] && cmp -s "$ROOT/scripts/kafka/pom.xml" "$KAFKA_DIR/libs/.complete"; then
    return
  fi
  command -v mvn >/dev/null || die "maven (mvn) is needed to fetch Kafka's jars"
  log "fetching Kafka jars from Maven Central into $KAFKA_DIR/libs"
  rm -rf "$KAFKA_DIR/libs"
  mkdir -p "$KAFKA_DIR/libs"
  mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/libs" >"$KAFKA_DIR/maven.log" 2>&1 ||
    { tail -n 30 "$KAFKA_DIR/maven.log" >&2; die "maven could not fetch Kafka's jars; see $KAFKA_DIR/maven.log"; }
  cp "$ROOT/scripts/kafka/pom.xml" "$KAFKA_DIR/libs/.complete"
}

# The JVM command line for Kafka's main classes; an array, not a function,
# so that `&` leaves $! pointing at java itself.
KAFKA_JAVA=(java "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC
  "-Dkafka.logs.dir=$KAFKA_DIR/logs"
  "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties"
  -cp "$KAFKA_DIR/libs/*")

kafka_answers() {
  port_open 9092 || return 1
  "$ROOT/bin/depcheck" kafka "$KAFKA_ADDR" >/dev/null 2>&1
}

kafka_up() {
  command -v java >/dev/null || die "a JDK (java 17+) is needed to run Kafka"
  kafka_fetch
  mkdir -p "$ROOT/bin"
  (cd "$ROOT" && go build -o bin/depcheck ./scripts/depcheck) || die "could not build scripts/depcheck"
  if kafka_answers; then
    log "kafka already answering on $KAFKA_ADDR"
    return
  fi
  mkdir -p "$KAFKA_DIR/logs"
  sed "s#@DATA_DIR@#$KAFKA_DIR/data#" "$ROOT/scripts/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
    log "formatting kafka storage (cluster id $KAFKA_CLUSTER_ID)"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$KAFKA_CLUSTER_ID" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 ||
      { cat "$KAFKA_DIR/logs/format.log" >&2; die "kafka storage format failed; see $KAFKA_DIR/logs/format.log"; }
  fi
  log "starting kafka (log: $KAFKA_DIR/logs/server.log)"
  "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/stdout.log" 2>&1 &
  echo $! >"$KAFKA_DIR/kafka.pid"
  local waited=0
  until kafka_answers; do
    if ! pid_alive "$KAFKA_DIR/kafka.pid"; then
      tail -n 30 "$KAFKA_DIR/logs/stdout.log" "$KAFKA_DIR/logs/server.log" >&2 2>/dev/null || true
      die "kafka exited during start-up; see $KAFKA_DIR/logs/server.log"
    fi
    ((waited++ < WAIT_SECONDS)) || die "kafka did not answer metadata within ${WAIT_SECONDS}s; see $KAFKA_DIR/logs/server.log"
    sleep 1
  done
  log "kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml") up on $KAFKA_ADDR"
}

# --- stop / status ------------------------------------------------------

stop_pid() {
  local name=$1 pidfile=$2
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return
  fi
  local pid
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  # runuser forwards the signal to the server it started.
  kill -TERM "$pid"
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in 30s; killing it"
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

status() {
  local rc=0
  if pid_alive "$KAFKA_DIR/kafka.pid"; then
    echo "kafka:      running, pid $(cat "$KAFKA_DIR/kafka.pid"), $KAFKA_ADDR, log $KAFKA_DIR/logs/server.log"
  elif port_open 9092; then
    echo "kafka:      something not started by this script listens on $KAFKA_ADDR"
  else
    echo "kafka:      stopped"; rc=1
  fi
  if pid_alive "$CH_DIR/clickhouse.pid"; then
    echo "clickhouse: running, pid $(cat "$CH_DIR/clickhouse.pid"), native 127.0.0.1:$CH_NATIVE_PORT, http 127.0.0.1:$CH_HTTP_PORT, log $CH_DIR/log/clickhouse-server.log"
  elif port_open "$CH_NATIVE_PORT"; then
    echo "clickhouse: something not started by this script listens on 127.0.0.1:$CH_NATIVE_PORT"
  else
    echo "clickhouse: stopped"; rc=1
  fi
  return $rc
}

case ${1:-} in
  up)
    ch_up
    kafka_up
    status
    ;;
  down)
    stop_pid kafka "$KAFKA_DIR/kafka.pid"
    stop_pid clickhouse "$CH_DIR/clickhouse.pid"
    ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
