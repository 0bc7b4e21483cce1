#!/usr/bin/env bash
# Instructions per event of a Go benchmark that reports one batch of
# events per iteration, counted by valgrind's callgrind: steadier on a
# shared machine than any time. Two runs of the same binary, N1 and N2
# iterations, cancel the set-up: (Ir(N2) - Ir(N1)) / ((N2 - N1) * EVENTS).
#
#   scripts/instructions.sh [PACKAGE] [BENCHMARK] [EVENTS]
#   default: ./enricher/pipeline BenchmarkProcess 1000
#
# Callgrind runs Go only without cgo (it trips on the runtime's thread
# start) and without asynchronous preemption (it trips on the signal).
set -euo pipefail
pkg=${1:-./enricher/pipeline} bench=${2:-BenchmarkProcess} events=${3:-1000}
n1=3 n2=13
if ! command -v valgrind >/dev/null; then
  echo "instructions: installing valgrind from Debian" >&2
  apt-get install -y -qq valgrind >/dev/null
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 go test -c -o "$bin/bench.test" "$pkg"
count() {
  (cd "$pkg" && GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$bin/cg.$1" \
    "$bin/bench.test" -test.run='^$' -test.bench="^$bench\$" -test.benchtime="$1x" -test.cpu=1 >/dev/null 2>"$bin/log.$1") ||
    { cat "$bin/log.$1" >&2; exit 1; }
  callgrind_annotate "$bin/cg.$1" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
a=$(count $n1) b=$(count $n2)
echo "$bench ($pkg): $(( (b - a) / ((n2 - n1) * events) )) instructions per event (callgrind; $n1 and $n2 iterations of $events events)"
