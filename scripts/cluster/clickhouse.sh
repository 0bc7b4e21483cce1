#!/usr/bin/env bash
# Starts, stops and reports the replicated ClickHouse setup the cluster
# tests use: one ZooKeeper (Debian's zookeeper package) and two ClickHouse
# 18.16 servers, the two replicas of one shard of the cluster `consentflow`,
# each with its macros ({shard}, {replica}). All on loopback, on ports and
# folders of their own, beside the single node of scripts/deps.sh (9000,
# 8123, 9009), which they leave alone:
#
#   ZooKeeper   127.0.0.1:12181
#   replica r1  native 19000, http 18123, interserver 19009
#   replica r2  native 19001, http 18124, interserver 19010
#
#   scripts/deps.sh clickhouse-cluster up      (or scripts/cluster/clickhouse.sh up)
#   scripts/deps.sh clickhouse-cluster down    stops what up started
#   scripts/cluster/clickhouse.sh status|kill r1|start r1|stop-zookeeper|start-zookeeper
#
# Idempotent: `up` installs what is missing and starts only what does not
# answer. Data, configs, logs and pid files are under $DEPS_DIR/chcluster,
# or /var/lib/consentflow-deps/<hash>/chcluster when the clickhouse user
# cannot reach $DEPS_DIR (as scripts/deps.sh does for the single node).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPS_DIR=${DEPS_DIR:-$ROOT/.deps}
WAIT_SECONDS=${WAIT_SECONDS:-120}
CLUSTER=consentflow
ZK_PORT=12181
REPLICAS=(r1 r2)
declare -A NATIVE=([r1]=19000 [r2]=19001) HTTP=([r1]=18123 [r2]=18124) INTERSERVER=([r1]=19009 [r2]=19010)

log() { printf 'chcluster: %s\n' "$*" >&2; }
die() { printf 'chcluster: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=../common.sh
. "$ROOT/scripts/common.sh"

# base prints the folder of everything: under DEPS_DIR when the clickhouse
# user can reach it, else under /var/lib. Remembered in DEPS_DIR.
base() {
  local file=$DEPS_DIR/chcluster.dir
  if [[ -f $file ]]; then
    cat "$file"
    return
  fi
  mkdir -p "$DEPS_DIR"
  local dir=$DEPS_DIR/chcluster
  if ! runuser -u clickhouse -- test -x "$DEPS_DIR" 2>/dev/null; then
    dir=/var/lib/consentflow-deps/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/chcluster
    log "the clickhouse user cannot reach $DEPS_DIR; the cluster's data goes to $dir"
  fi
  echo "$dir" >"$file"
  echo "$dir"
}

# --- ZooKeeper ----------------------------------------------------------

zk_install() {
  [[ -f /usr/share/java/zookeeper.jar ]] && return
  log "installing zookeeper from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
}

zk_up() {
  zk_install
  local dir
  dir=$(base)/zookeeper
  if pid_alive "$dir/pid" ZooKeeperServerMain; then
    log "zookeeper already running on 127.0.0.1:$ZK_PORT"
    return
  fi
  port_open "$ZK_PORT" && die "127.0.0.1:$ZK_PORT is taken by something this script did not start"
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
EOF
  log "starting zookeeper on 127.0.0.1:$ZK_PORT (log: $dir/stdout.log)"
  # The jar's manifest names its dependencies in /usr/share/java.
  setsid java -Xms64m -Xmx256m -cp /usr/share/java/zookeeper.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  local waited=0
  # Sleep first: until the child has exec'd java its command line is this
  # script's, and pid_alive would take it for dead.
  until sleep 1 && port_open "$ZK_PORT"; do
    pid_alive "$dir/pid" ZooKeeperServerMain || { tail -n 20 "$dir/stdout.log" >&2; die "zookeeper exited during start-up"; }
    ((waited++ < WAIT_SECONDS)) || die "zookeeper did not listen within ${WAIT_SECONDS}s"
  done
}

# --- ClickHouse replicas ------------------------------------------------

# ch_config writes replica $1's config: the stock one with every path
# under its folder and its own ports, plus config.d/cluster.xml (ZooKeeper,
# the cluster, the macros).
ch_config() {
  local r=$1 dir=$2
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log,config.d,users.d}
  sed -e "s#/var/lib/clickhouse/#$dir/data/#g" \
      -e "s#$dir/data/tmp/#$dir/tmp/#g" \
      -e "s#$dir/data/user_files/#$dir/user_files/#g" \
      -e "s#$dir/data/format_schemas/#$dir/format_schemas/#g" \
      -e "s#/var/log/clickhouse-server/#$dir/log/#g" \
      -e "s#<listen_host>::1</listen_host>##" \
      -e "s#<http_port>8123</http_port>#<http_port>${HTTP[$r]}</http_port>#" \
      -e "s#<tcp_port>9000</tcp_port>#<tcp_port>${NATIVE[$r]}</tcp_port>#" \
      -e "s#<interserver_http_port>9009</interserver_http_port>#<interserver_http_port>${INTERSERVER[$r]}</interserver_http_port>#" \
      /etc/clickhouse-server/config.xml >"$dir/config.xml"
  sed -e 's#<ip>::/0</ip>#<ip>127.0.0.1</ip><ip>::1</ip>#' \
      /etc/clickhouse-server/users.xml >"$dir/users.xml"
  local replicas="" other
  for other in "${REPLICAS[@]}"; do
    replicas+="<replica><host>127.0.0.1</host><port>${NATIVE[$other]}</port></replica>"
  done
  # internal_replication: a Distributed table writes each row to one
  # replica and replication copies it; analysts read through it.
  # ${CLUSTER}_two_shards (each server a shard of its own) is for the test
  # that the sink refuses a cluster of several shards.
  cat >"$dir/config.d/cluster.xml" <<EOF
<yandex>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <zookeeper>
    <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
    <session_timeout_ms>10000</session_timeout_ms>
  </zookeeper>
  <remote_servers replace="1">
    <$CLUSTER>
      <shard><internal_replication>true</internal_replication>$replicas</shard>
    </$CLUSTER>
    <${CLUSTER}_two_shards>
      <shard><replica><host>127.0.0.1</host><port>${NATIVE[r1]}</port></replica></shard>
      <shard><replica><host>127.0.0.1</host><port>${NATIVE[r2]}</port></replica></shard>
    </${CLUSTER}_two_shards>
  </remote_servers>
  <macros><cluster>$CLUSTER</cluster><shard>01</shard><replica>$r</replica></macros>
</yandex>
EOF
  chown -R clickhouse:clickhouse "$dir"
  chmod 0750 "$dir/users.d"
}

ch_answers() { clickhouse-client --port "${NATIVE[$1]}" --query 'SELECT 1' >/dev/null 2>&1; }

ch_start() {
  local r=$1 dir
  dir=$(base)/$r
  if ch_answers "$r"; then
    log "replica $r already answering on 127.0.0.1:${NATIVE[$r]}"
    return
  fi
  port_open "${NATIVE[$r]}" && die "127.0.0.1:${NATIVE[$r]} is taken by something that does not answer"
  ch_config "$r" "$dir"
  log "starting replica $r (native ${NATIVE[$r]}, http ${HTTP[$r]}; log $dir/log/clickhouse-server.log)"
  setsid setpriv --reuid=clickhouse --regid=clickhouse --init-groups -- \
    clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
}

ch_wait() {
  local r=$1 dir waited=0
  dir=$(base)/$r
  # Sleep first, as in zk_up.
  until sleep 1 && ch_answers "$r"; do
    pid_alive "$dir/pid" clickhouse-server || { tail -n 20 "$dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true; die "replica $r exited during start-up"; }
    ((waited++ < WAIT_SECONDS)) || die "replica $r did not answer within ${WAIT_SECONDS}s"
  done
}

up() {
  command -v clickhouse-server >/dev/null || "$ROOT/scripts/deps.sh" up >/dev/null
  command -v java >/dev/null || die "java is needed to run ZooKeeper"
  zk_up
  local r
  for r in "${REPLICAS[@]}"; do ch_start "$r"; done
  for r in "${REPLICAS[@]}"; do ch_wait "$r"; done
  # The replicas see ZooKeeper and the cluster.
  for r in "${REPLICAS[@]}"; do
    clickhouse-client --port "${NATIVE[$r]}" --query "SELECT count() FROM system.zookeeper WHERE path = '/'" >/dev/null ||
      die "replica $r cannot reach zookeeper"
  done
  status
}

stop_pid() {
  local name=$1 pidfile=$2 pattern=$3 signal=${4:-TERM}
  if ! pid_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return
  fi
  local pid
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid, SIG$signal)"
  kill "-$signal" "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$pidfile"
}

down() {
  [[ -f $DEPS_DIR/chcluster.dir ]] || return 0
  local r b
  b=$(base)
  for r in "${REPLICAS[@]}"; do stop_pid "replica $r" "$b/$r/pid" clickhouse-server; done
  stop_pid zookeeper "$b/zookeeper/pid" ZooKeeperServerMain
}

status() {
  local b rc=0 r
  b=$(base)
  if pid_alive "$b/zookeeper/pid" ZooKeeperServerMain; then
    echo "zookeeper:  running, pid $(cat "$b/zookeeper/pid"), 127.0.0.1:$ZK_PORT"
  else
    echo "zookeeper:  stopped"; rc=1
  fi
  for r in "${REPLICAS[@]}"; do
    if pid_alive "$b/$r/pid" clickhouse-server; then
      echo "replica $r: running, pid $(cat "$b/$r/pid"), native 127.0.0.1:${NATIVE[$r]}, http ${HTTP[$r]}, log $b/$r/log/clickhouse-server.log"
    else
      echo "replica $r: stopped"; rc=1
    fi
  done
  return $rc
}

replica() {
  [[ -n ${NATIVE[${1:-}]:-} ]] || die "name a replica: ${REPLICAS[*]}"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  running) for r in "${REPLICAS[@]}"; do ch_answers "$r" || exit 1; done; port_open "$ZK_PORT" ;;
  # For the fault tests: SIGKILL a replica, start it again on its data.
  kill) replica "${2:-}"; stop_pid "replica $2" "$(base)/$2/pid" clickhouse-server KILL ;;
  start) replica "${2:-}"; ch_start "$2"; ch_wait "$2" ;;
  stop-zookeeper) stop_pid zookeeper "$(base)/zookeeper/pid" ZooKeeperServerMain ;;
  start-zookeeper) zk_up ;;
  *) echo "usage: $0 up|down|status|running|kill REPLICA|start REPLICA|stop-zookeeper|start-zookeeper" >&2; exit 2 ;;
esac
