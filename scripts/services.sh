#!/usr/bin/env bash
# The real services the tests use, from Debian's packages: PostgreSQL (multi-machine studies) on loopback.
# Prints the environment the tests read (TRAINPILOT_TEST_PG); prints nothing where it cannot be set up,
# and the tests that need it skip with a message saying so.
set -uo pipefail
have_root() { [ "$(id -u)" = 0 ]; }
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if have_root && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1; } || true
  fi
fi
command -v pg_ctlcluster >/dev/null 2>&1 || exit 0
cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1" "$2}')
if [ -z "$cluster" ]; then
  have_root || exit 0
  pg_createcluster 15 main >/dev/null 2>&1 || exit 0
  cluster=$(pg_lsclusters -h | awk 'NR==1{print $1" "$2}')
fi
port=$(pg_lsclusters -h | awk 'NR==1{print $3}')
pg_ctlcluster $cluster start >/dev/null 2>&1 || true   # already running is fine
for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.5; done
pg_isready -q -h 127.0.0.1 -p "$port" || exit 0
as_pg() { if have_root; then su postgres -c "$1"; else bash -c "$1"; fi; }
as_pg "psql -q -p $port -tc \"SELECT 1 FROM pg_roles WHERE rolname='trainpilot'\" | grep -q 1 || psql -q -p $port -c \"CREATE ROLE trainpilot LOGIN PASSWORD 'trainpilot'\"" >/dev/null 2>&1
as_pg "psql -q -p $port -tc \"SELECT 1 FROM pg_database WHERE datname='trainpilot_test'\" | grep -q 1 || createdb -p $port -O trainpilot trainpilot_test" >/dev/null 2>&1
echo "TRAINPILOT_TEST_PG=postgresql://trainpilot:trainpilot@127.0.0.1:$port/trainpilot_test"
