# Shell helpers the dependency scripts share (scripts/deps.sh,
# scripts/cluster/clickhouse.sh); sourced, never run.

# pid_alive PIDFILE PATTERN: the pid in the file runs and its command line
# holds PATTERN, so a pid reused after a reboot is not taken for ours.
pid_alive() {
  [[ -f $1 ]] || return 1
  local pid
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
