# shellcheck shell=bash
# A three-broker Kafka cluster (KRaft, each node broker and controller) on
# loopback, from the Maven jars scripts/deps.sh fetches for the single
# node. Sourced by scripts/deps.sh, whose helpers it uses (kafka_fetch,
# pid_alive, port_open, stop_pid, log, die):
#
#   scripts/deps.sh kafka-cluster up|down|status
#
# Clients: 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 (nodes 1-3);
# controllers on 19192-19194. Data, logs and pid files under
# $KAFKA_CLUSTER_DIR (default $DEPS_DIR/kafka-cluster/node-<id>/). `up`
# starts only the nodes that are not running, so it also restarts one a
# test killed; `down` stops what `up` started. The services use it with
# configs/cluster/kafka.env (every topic replication factor 3, min ISR 2).

KAFKA_CLUSTER_DIR=${KAFKA_CLUSTER_DIR:-$DEPS_DIR/kafka-cluster}
KAFKA_CLUSTER_NODES=(1 2 3)
# base64url of the 16 bytes "pipeline-cluster": apart from the single
# node's, so a broker of one can never join the other.
KAFKA_CLUSTER_CLUSTER_ID=cGlwZWxpbmUtY2x1c3Rlcg
KAFKA_CLUSTER_HEAP=${KAFKA_CLUSTER_HEAP:-384m}

kc_client_port() { echo $((19091 + $1)); }
kc_controller_port() { echo $((19191 + $1)); }
kc_dir() { echo "$KAFKA_CLUSTER_DIR/node-$1"; }
kc_pidfile() { echo "$KAFKA_CLUSTER_DIR/node-$1.pid"; }
# The pattern that tells node N's java from any other broker's.
kc_pattern() { echo "kafka.Kafka $(kc_dir "$1")/server.properties"; }

kc_brokers() {
  local n out=()
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do out+=("127.0.0.1:$(kc_client_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

# kc_java N: the JVM command line of node N, as deps.sh's KAFKA_JAVA with
# the node's own heap, logs and GC log.
kc_java() {
  local dir
  dir=$(kc_dir "$1")
  KC_JAVA=(java "-Xms$KAFKA_CLUSTER_HEAP" "-Xmx$KAFKA_CLUSTER_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15
    -Djava.awt.headless=true "-Xlog:gc:file=$dir/logs/gc.log:time,uptime:filecount=2,filesize=10M"
    "-Dkafka.logs.dir=$dir/logs"
    "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties"
    -cp "$KAFKA_DIR/libs/*")
}

kc_properties() {
  local n=$1 voters=() m
  for m in "${KAFKA_CLUSTER_NODES[@]}"; do voters+=("$m@127.0.0.1:$(kc_controller_port "$m")"); done
  cat <<EOF
# Node $n of the three-node cluster (scripts/cluster/kafka.sh); written at
# every start, so edit the script, not this file.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
listeners=PLAINTEXT://127.0.0.1:$(kc_client_port "$n"),CONTROLLER://127.0.0.1:$(kc_controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kc_client_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$(kc_dir "$n")/data
auto.create.topics.enable=false
# Every record on three nodes and an acks=all produce on two before it is
# acknowledged: one node may fail without losing or refusing anything.
# The services set the same per topic (configs/cluster/kafka.env).
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
# Consumer offsets and transaction state: a transaction's commit or a
# group's offsets must survive a node too.
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=60000
EOF
}

kc_answers() {
  port_open "$(kc_client_port "$1")" || return 1
  "$ROOT/bin/depcheck" kafka "127.0.0.1:$(kc_client_port "$1")" >/dev/null 2>&1
}

kc_start_node() {
  local n=$1 dir pidfile
  dir=$(kc_dir "$n")
  pidfile=$(kc_pidfile "$n")
  if pid_alive "$pidfile" "$(kc_pattern "$n")"; then
    return
  fi
  if port_open "$(kc_client_port "$n")" || port_open "$(kc_controller_port "$n")"; then
    die "port $(kc_client_port "$n") or $(kc_controller_port "$n") is taken by something this script did not start"
  fi
  mkdir -p "$dir/logs"
  kc_properties "$n" >"$dir/server.properties"
  kc_java "$n"
  if [[ ! -f $dir/data/meta.properties ]]; then
    log "formatting kafka cluster node $n storage (cluster id $KAFKA_CLUSTER_CLUSTER_ID)"
    "${KC_JAVA[@]}" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_CLUSTER_ID" \
      -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 ||
      { cat "$dir/logs/format.log" >&2; die "kafka cluster node $n: storage format failed; see $dir/logs/format.log"; }
  fi
  log "starting kafka cluster node $n (log: $dir/logs/server.log)"
  setsid "${KC_JAVA[@]}" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$pidfile"
}

kafka_cluster_up() {
  command -v java >/dev/null || die "a JDK (java 17+) is needed to run Kafka"
  kafka_fetch
  mkdir -p "$ROOT/bin" "$KAFKA_CLUSTER_DIR"
  (cd "$ROOT" && go build -o bin/depcheck ./scripts/depcheck) || die "could not build scripts/depcheck"
  local n
  # All nodes before any wait: a broker answers metadata only once a
  # majority of the controllers has elected a leader.
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do kc_start_node "$n"; done
  local waited=0
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    until kc_answers "$n"; do
      if ! pid_alive "$(kc_pidfile "$n")" "$(kc_pattern "$n")"; then
        tail -n 30 "$(kc_dir "$n")/logs/stdout.log" "$(kc_dir "$n")/logs/server.log" >&2 2>/dev/null || true
        die "kafka cluster node $n exited during start-up; see $(kc_dir "$n")/logs/server.log"
      fi
      ((waited++ < WAIT_SECONDS)) || die "kafka cluster node $n did not answer metadata within ${WAIT_SECONDS}s; see $(kc_dir "$n")/logs/server.log"
      sleep 1
    done
  done
  # Each node answers once it has registered; every one in metadata means
  # topics can be created with three replicas.
  until "$ROOT/bin/depcheck" kafka "127.0.0.1:$(kc_client_port "${KAFKA_CLUSTER_NODES[0]}")" 2>/dev/null | grep -q " ${#KAFKA_CLUSTER_NODES[@]} broker(s)"; do
    ((waited++ < WAIT_SECONDS)) || die "the kafka cluster does not list ${#KAFKA_CLUSTER_NODES[@]} brokers within ${WAIT_SECONDS}s"
    sleep 1
  done
  log "kafka cluster up: $(kc_brokers) (configs/cluster/kafka.env points the services at it)"
}

# kafka_cluster_down stops every node at once: stopped one by one, the last
# would wait for a controller quorum that is gone.
kafka_cluster_down() {
  local n pids=()
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    if pid_alive "$(kc_pidfile "$n")" "$(kc_pattern "$n")"; then
      pids+=("$(cat "$(kc_pidfile "$n")")")
      log "stopping kafka cluster node $n (pid ${pids[-1]})"
    fi
  done
  ((${#pids[@]} > 0)) && kill -TERM "${pids[@]}" 2>/dev/null
  local pid
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "kafka cluster pid $pid did not stop in 60s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do rm -f "$(kc_pidfile "$n")"; done
}

kafka_cluster_status() {
  local n rc=0
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    if pid_alive "$(kc_pidfile "$n")" "$(kc_pattern "$n")"; then
      echo "kafka cluster node $n: running, pid $(cat "$(kc_pidfile "$n")"), 127.0.0.1:$(kc_client_port "$n"), log $(kc_dir "$n")/logs/server.log"
    else
      echo "kafka cluster node $n: stopped"; rc=1
    fi
  done
  return $rc
}

kafka_cluster() {
  case ${1:-} in
    up) kafka_cluster_up; kafka_cluster_status ;;
    down) kafka_cluster_down ;;
    status) kafka_cluster_status ;;
    *) die "kafka-cluster takes up, down or status, not '${1:-}'" ;;
  esac
}
