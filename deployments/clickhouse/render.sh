#!/bin/sh
# render.sh FILE prints a ClickHouse user file of this folder (*.sql,
# users.d/*.xml) with each ${NAME_SHA256} it holds replaced by that
# environment variable: the SHA-256, in hex, of the user's password. The
# files ship with no password, so they cannot be run as they are: ClickHouse
# refuses ${...} as a hash. This fails, printing nothing and naming the
# variable, when one is unset, is not 64 hex digits, or is a placeholder's
# hash (all zeros; the hash of an empty password, "password", "changeme",
# "replace-me", "clickhouse", "secret").
#
#   PASSWORD=$(head -c 24 /dev/urandom | base64)   # keep it for the service's Secret
#   export SINK_PASSWORD_SHA256=$(printf '%s' "$PASSWORD" | sha256sum | cut -d' ' -f1)
#   deployments/clickhouse/render.sh deployments/clickhouse/sink-user.sql |
#     clickhouse-client --user admin --ask-password --multiquery
#   deployments/clickhouse/render.sh deployments/clickhouse/users.d/sink.xml \
#     > /etc/clickhouse-server/users.d/sink.xml      # 18.16
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 FILE (a .sql or users.d/*.xml file of deployments/clickhouse)" >&2
  exit 2
fi
file=$1
[ -r "$file" ] || { echo "$file: cannot read it" >&2; exit 2; }

placeholders="0000000000000000000000000000000000000000000000000000000000000000
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
057ba03d6c44104863dc7361fe4578965d1887360f90a0895882e58a6248fc86
1df4b07d05b9b3b1115b4b6b22af319a2f99564a2fa2573a34896063c7513c10
7e099f39b84ea79559b3e85ea046804e63725fd1f46b37f281276aae20f86dc3
2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"

# The names are [A-Za-z0-9_] only (the grep), so eval below reads a
# variable and runs nothing else.
vars=$(grep -o '\${[A-Za-z0-9_]*}' "$file" | sed 's/^\${\(.*\)}$/\1/' | sort -u)
script=""
failed=0
for v in $vars; do
  case $v in
    *_SHA256) ;;
    *) echo "$file: \${$v}: only *_SHA256 variables are substituted" >&2; failed=1; continue ;;
  esac
  eval "val=\${$v-}"
  val=$(printf '%s' "$val" | tr 'A-F' 'a-f')
  how="export it as the SHA-256 of the user's password: printf '%s' \"\$PASSWORD\" | sha256sum | cut -d' ' -f1"
  if [ -z "$val" ]; then
    echo "$file: $v is not set: $how" >&2
    failed=1
  elif [ ${#val} -ne 64 ] || [ -n "$(printf '%s' "$val" | tr -d '0-9a-f')" ]; then
    echo "$file: $v is not 64 hex digits: $how" >&2
    failed=1
  elif printf '%s\n' "$placeholders" | grep -qx "$val"; then
    echo "$file: $v is the hash of a placeholder or an empty password: choose a password" >&2
    failed=1
  else
    script="$script
s/\\\${$v}/$val/g"
  fi
done
[ "$failed" -eq 0 ] || exit 1
sed "$script" "$file"
