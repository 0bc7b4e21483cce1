#!/usr/bin/env bash
# Starts, stops and reports the real dependencies the pipeline and its tests
# use: one Apache Kafka node (KRaft) and one ClickHouse server, both on
# loopback; and installs Prometheus's server and promtool, which the tests
# run themselves. Idempotent: `up` installs what is missing and starts only what is
# not already answering; `down` stops only what `up` started.
#
#   scripts/deps.sh up|status
#   scripts/deps.sh down [kafka|clickhouse]
#   scripts/deps.sh running kafka|clickhouse   (exit 0 if it answers)
#   scripts/deps.sh kafka-cluster up|down|status
#                    (three Kafka brokers on 19092-19094: scripts/cluster/kafka.sh)
#   scripts/deps.sh clickhouse-cluster up|down|status
#                    (ZooKeeper and two ClickHouse replicas: scripts/cluster/clickhouse.sh)
#
# Everything it writes (jars, data, logs, pid files) is under $DEPS_DIR
# (default .deps/ in the repository, ignored by git). ClickHouse's data goes
# to /var/lib/consentflow-deps/<hash> instead when the clickhouse user cannot
# reach $DEPS_DIR (a checkout under /root, for example). The server also
# reads users from <that folder>/users.d/, where the tests add a user of
# their own per database (internal/testenv) and remove it when done.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS_DIR=${DEPS_DIR:-$ROOT/.deps}
KAFKA_DIR=$DEPS_DIR/kafka
KAFKA_PID=$DEPS_DIR/kafka.pid
CH_PID=$DEPS_DIR/clickhouse.pid
CH_DIR_FILE=$DEPS_DIR/clickhouse.dir
KAFKA_CLUSTER_ID=${KAFKA_CLUSTER_ID:-cGlwZWxpbmUtbG9jYWwtMQ}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
KAFKA_ADDR=127.0.0.1:9092
CH_NATIVE_PORT=9000
CH_HTTP_PORT=8123
WAIT_SECONDS=${WAIT_SECONDS:-120}

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

# --- Prometheus tools ----------------------------------------------------

# prom_install installs Debian's prometheus package for promtool and the
# server the tests run against the services (deployments/prometheus). The
# tests start their own server; a packaged one started by systemd is
# stopped, as for ClickHouse.
prom_install() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    return
  fi
  log "installing prometheus (server and promtool) from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    log "stopping and disabling the packaged prometheus service"
    systemctl stop prometheus
    systemctl disable --quiet prometheus
  fi
}

# compose_install installs Debian's docker-compose (1.29, python; no Docker
# engine needed), whose `docker-compose config` the tests use to validate
# deployments/compose.yaml (e2e/compose_test.go).
compose_install() {
  if command -v docker-compose >/dev/null; then
    return
  fi
  log "installing docker-compose (to validate deployments/compose.yaml) from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
}

# gcc_install installs a C compiler: the race detector, under which `make
# test` runs the unit tests, needs cgo, which Go turns off without one.
gcc_install() {
  if command -v gcc >/dev/null; then
    return
  fi
  log "installing gcc (for go test -race) from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
}

# --- ClickHouse ---------------------------------------------------------

ch_install() {
  if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null; then
    return
  fi
  log "installing clickhouse-server and clickhouse-client from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
  # On a host with systemd the package starts its own server on our ports,
  # with its data in /var/lib/clickhouse; this script runs its own instead.
  if command -v systemctl >/dev/null && systemctl is-active --quiet clickhouse-server 2>/dev/null; then
    log "stopping and disabling the packaged clickhouse-server service"
    systemctl stop clickhouse-server
    systemctl disable --quiet clickhouse-server
  fi
}

# ch_dir prints the folder for ClickHouse's data, config and logs: under
# DEPS_DIR when the clickhouse user can reach it, else under /var/lib.
ch_dir() {
  if [[ -f $CH_DIR_FILE ]]; then
    cat "$CH_DIR_FILE"
    return
  fi
  local dir=$DEPS_DIR/clickhouse
  if ! runuser -u clickhouse -- test -x "$DEPS_DIR" 2>/dev/null; then
    dir=/var/lib/consentflow-deps/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/clickhouse
    log "the clickhouse user cannot reach $DEPS_DIR; its data goes to $dir"
  fi
  echo "$dir" >"$CH_DIR_FILE"
  echo "$dir"
}

ch_config() {
  local dir=$1
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
  ch_users_dir "$dir"
  # Users a test added for itself and did not remove (it was killed): no
  # test can be using them, since the server is not running.
  rm -f "$dir"/users.d/testenv_*.xml
  # The stock config, with every path moved under $dir and loopback only.
  sed -e "s#/var/lib/clickhouse/#$dir/data/#g" \
      -e "s#$dir/data/tmp/#$dir/tmp/#g" \
      -e "s#$dir/data/user_files/#$dir/user_files/#g" \
      -e "s#$dir/data/format_schemas/#$dir/format_schemas/#g" \
      -e "s#/var/log/clickhouse-server/#$dir/log/#g" \
      -e "s#<listen_host>::1</listen_host>##" \
      /etc/clickhouse-server/config.xml >"$dir/config.xml"
  sed -e 's#<ip>::/0</ip>#<ip>127.0.0.1</ip><ip>::1</ip>#' \
      /etc/clickhouse-server/users.xml >"$dir/users.xml"
  chown -R clickhouse:clickhouse "$dir"
}

# ch_users_dir makes $dir/users.d, which the server merges into users.xml
# and re-reads when a file there changes (or on SYSTEM RELOAD CONFIG): the
# tests write a user scoped to their own database there. Only root (the
# tests) writes it; the clickhouse user reads it.
ch_users_dir() {
  mkdir -p "$1/users.d"
  chown clickhouse:clickhouse "$1/users.d"
  chmod 0750 "$1/users.d"
}

ch_answers() { clickhouse-client --port "$CH_NATIVE_PORT" --query 'SELECT 1' >/dev/null 2>&1; }

ch_up() {
  ch_install
  if ch_answers; then
    log "clickhouse already answering on 127.0.0.1:$CH_NATIVE_PORT"
    # A server started before users.d existed picks the folder up at its
    # next reload, so `up` on it is enough.
    if pid_alive "$CH_PID" clickhouse-server; then
      ch_users_dir "$(ch_dir)"
    fi
    return
  fi
  mkdir -p "$DEPS_DIR"
  local dir
  dir=$(ch_dir)
  ch_config "$dir"
  log "starting clickhouse (log: $dir/log/clickhouse-server.log)"
  # The server refuses data owned by another user, so it runs as the
  # package's clickhouse user. setsid and setpriv exec, so $! is the server
  # itself and `down` can give it time to stop cleanly; its own session keeps
  # a Ctrl-C on the terminal that started it from stopping it.
  setsid setpriv --reuid=clickhouse --regid=clickhouse --init-groups -- \
    clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
  echo $! >"$CH_PID"
  local waited=0
  until ch_answers; do
    if ! pid_alive "$CH_PID" clickhouse-server; then
      tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
      die "clickhouse exited during start-up; see $dir/log/clickhouse-server.err.log"
    fi
    ((waited++ < WAIT_SECONDS)) || die "clickhouse did not answer SELECT 1 within ${WAIT_SECONDS}s; see $dir/log/clickhouse-server.err.log"
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
# The GC flags are those of Kafka's own kafka-run-class.sh
# (KAFKA_JVM_PERFORMANCE_OPTS): without them G1 aims at 200 ms pauses, and
# every produce acknowledged during one waits for it.
KAFKA_JAVA=(java "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15
  -Djava.awt.headless=true "-Xlog:gc:file=$KAFKA_DIR/logs/gc.log:time,uptime:filecount=2,filesize=10M"
  "-Dkafka.logs.dir=$KAFKA_DIR/logs"
  "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties"
  -cp "$KAFKA_DIR/libs/*")

kafka_answers() {
  port_open 9092 || return 1
  [[ -x $ROOT/bin/depcheck ]] || return 1
  "$ROOT/bin/depcheck" kafka "$KAFKA_ADDR" >/dev/null 2>&1
}

# kafka_adopt records the pid of a broker this checkout started whose pid
# file was lost or overwritten, so `status` and `down` know it again.
kafka_adopt() {
  pid_alive "$KAFKA_PID" kafka.Kafka && return
  local pid
  pid=$(pgrep -f "kafka.Kafka $KAFKA_DIR/server.properties" | head -n 1) || true
  if [[ -n $pid ]]; then
    echo "$pid" >"$KAFKA_PID"
    log "kafka (pid $pid) is this checkout's; recorded it"
  fi
}

kafka_up() {
  command -v java >/dev/null || die "a JDK (java 17+) is needed to run Kafka"
  kafka_fetch
  mkdir -p "$ROOT/bin"
  (cd "$ROOT" && go build -o bin/depcheck ./scripts/depcheck) || die "could not build scripts/depcheck"
  if kafka_answers; then
    log "kafka already answering on $KAFKA_ADDR"
    kafka_adopt
    return
  fi
  if port_open 9092; then
    # A broker still starting, or one too busy to answer at once: starting
    # a second one would fail to bind and leave its dead pid behind.
    log "something listens on 9092 but does not answer yet; waiting"
    local tries=0
    until kafka_answers; do
      ((tries++ < WAIT_SECONDS)) || die "port 9092 is taken by something that does not answer Kafka metadata"
      sleep 1
    done
    kafka_adopt
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
  setsid "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/stdout.log" 2>&1 &
  echo $! >"$KAFKA_PID"
  local waited=0
  until kafka_answers; do
    if ! pid_alive "$KAFKA_PID" kafka.Kafka; then
      tail -n 30 "$KAFKA_DIR/logs/stdout.log" "$KAFKA_DIR/logs/server.log" >&2 2>/dev/null || true
      die "kafka exited during start-up; see $KAFKA_DIR/logs/server.log"
    fi
    ((waited++ < WAIT_SECONDS)) || die "kafka did not answer metadata within ${WAIT_SECONDS}s; see $KAFKA_DIR/logs/server.log"
    sleep 1
  done
  log "kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml") up on $KAFKA_ADDR"
}

# shellcheck source=cluster/kafka.sh
. "$ROOT/scripts/cluster/kafka.sh"

# --- stop / status ------------------------------------------------------

# stop_pid NAME PIDFILE PATTERN: SIGTERM, up to 60s for a clean stop, then
# SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 pattern=$3
  if ! pid_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return
  fi
  local pid
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in 60s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

status() {
  local rc=0
  if pid_alive "$KAFKA_PID" kafka.Kafka; then
    echo "kafka:      running, pid $(cat "$KAFKA_PID"), $KAFKA_ADDR, log $KAFKA_DIR/logs/server.log"
  elif port_open 9092; then
    echo "kafka:      something not started by this script listens on $KAFKA_ADDR"
  else
    echo "kafka:      stopped"; rc=1
  fi
  if pid_alive "$CH_PID" clickhouse-server; then
    echo "clickhouse: running, pid $(cat "$CH_PID"), native 127.0.0.1:$CH_NATIVE_PORT, http 127.0.0.1:$CH_HTTP_PORT, log $(cat "$CH_DIR_FILE")/log/clickhouse-server.log, users $(cat "$CH_DIR_FILE")/users.d"
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
    prom_install
    compose_install
    gcc_install
    status
    ;;
  down)
    case ${2:-all} in
      kafka) stop_pid kafka "$KAFKA_PID" kafka.Kafka ;;
      clickhouse) stop_pid clickhouse "$CH_PID" clickhouse-server ;;
      all)
        stop_pid kafka "$KAFKA_PID" kafka.Kafka
        stop_pid clickhouse "$CH_PID" clickhouse-server
        ;;
      *) die "down takes kafka, clickhouse or nothing (both), not '$2'" ;;
    esac
    ;;
  running)
    case ${2:-} in
      kafka) port_open 9092 ;;
      clickhouse) port_open "$CH_NATIVE_PORT" ;;
      *) die "running takes kafka or clickhouse" ;;
    esac
    ;;
  status) status ;;
  kafka-cluster) kafka_cluster "${2:-}" ;;
  clickhouse-cluster)
    [[ ${2:-} =~ ^(up|down|status)$ ]] || die "clickhouse-cluster takes up, down or status"
    DEPS_DIR=$DEPS_DIR exec "$ROOT/scripts/cluster/clickhouse.sh" "$2"
    ;;
  *) echo "usage: $0 up|status|down [kafka|clickhouse]|running kafka|clickhouse|kafka-cluster up|down|status|clickhouse-cluster up|down|status" >&2; exit 2 ;;
esac
