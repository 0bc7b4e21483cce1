#!/usr/bin/env bash
# Makes the Python virtual environment in which a current ClickHouse engine
# runs: PyPI's chdb-core, ClickHouse built as a library, at the pinned
# version below. No current ClickHouse server installs here (Debian ships
# 18.16), so the sink's test of its SQL on current releases
# (sink/chwriter/currentengine_test.go) runs its statements in this engine.
#
#   scripts/chdb.sh venv    make the environment if missing; print its python
#
# It uses Debian's python3 (installing python3 and python3-venv when
# missing, as root), not whichever python3 comes first on PATH. Everything
# goes under $DEPS_DIR (default .deps/ in the repository): the wheel (about
# 180 MB, downloaded once) in chdb-wheels/, the environment in chdb-venv/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS_DIR=${DEPS_DIR:-$ROOT/.deps}
# chdb-core 26.9.0 embeds ClickHouse 26.9.2.1.
CHDB_CORE_VERSION=26.9.0
PYTHON=/usr/bin/python3
VENV=$DEPS_DIR/chdb-venv
WHEELS=$DEPS_DIR/chdb-wheels
STAMP=$VENV/.chdb-core-version

log() { printf 'chdb: %s\n' "$*" >&2; }
die() { printf 'chdb: error: %s\n' "$*" >&2; exit 1; }

ready() { [[ -x $VENV/bin/python && -f $STAMP && $(cat "$STAMP") == "$CHDB_CORE_VERSION" ]]; }

python_install() {
  if [[ -x $PYTHON ]] && "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    return
  fi
  [[ $(id -u) == 0 ]] || die "Debian's python3 and python3-venv are needed: apt-get install python3 python3-venv"
  log "installing python3 and python3-venv from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
}

venv() {
  if ready; then
    echo "$VENV/bin/python"
    return
  fi
  mkdir -p "$DEPS_DIR"
  # One maker at a time; whoever waited finds it made.
  exec 9>"$DEPS_DIR/chdb.lock"
  flock 9
  if ! ready; then
    python_install
    log "making $VENV with chdb-core $CHDB_CORE_VERSION"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    if ! compgen -G "$WHEELS/chdb_core-$CHDB_CORE_VERSION-*.whl" >/dev/null; then
      log "downloading the chdb-core $CHDB_CORE_VERSION wheel (about 180 MB) into $WHEELS"
      "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$WHEELS" "chdb-core==$CHDB_CORE_VERSION"
    fi
    # Without its dependencies: pandas and pyarrow serve chdb's DataFrame
    # API only, and the statements run as text.
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-index --find-links "$WHEELS" "chdb-core==$CHDB_CORE_VERSION"
    "$VENV/bin/python" -c 'import chdb' || die "chdb-core $CHDB_CORE_VERSION does not import in $VENV"
    echo "$CHDB_CORE_VERSION" >"$STAMP"
  fi
  echo "$VENV/bin/python"
}

case ${1:-} in
  venv) venv ;;
  *) die "usage: $0 venv" ;;
esac
