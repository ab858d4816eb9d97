#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer before tests or the dev server run.
# Starts them with the Debian tools when installed but stopped; otherwise says what is missing.
set -uo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

wait_for() {  # wait_for NAME CHECK_FUNCTION
  for _ in $(seq 1 30); do "$2" && return 0; sleep 1; done
  echo "error: $1 did not come up" >&2
  return 1
}

status=0

if ! command -v pg_isready >/dev/null; then
  echo "error: PostgreSQL client tools not found; install PostgreSQL (Debian: postgresql) and start it on $PGHOST:$PGPORT" >&2
  status=1
elif ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is not answering on $PGHOST:$PGPORT; starting it"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for PostgreSQL pg_up || status=1
  else
    echo "error: PostgreSQL is not answering on $PGHOST:$PGPORT and no local cluster is installed" >&2
    status=1
  fi
fi

if ! command -v redis-cli >/dev/null; then
  echo "error: redis-cli not found; install Redis (Debian: redis-server) and start it on $REDIS_HOST:$REDIS_PORT" >&2
  status=1
elif ! redis_up; then
  if command -v redis-server >/dev/null && [ "$REDIS_HOST" = "127.0.0.1" ]; then
    echo "Redis is not answering on $REDIS_HOST:$REDIS_PORT; starting it"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
      --save "" --appendonly no --dir "${TMPDIR:-/tmp}" --logfile ""
    wait_for Redis redis_up || status=1
  else
    echo "error: Redis is not answering on $REDIS_HOST:$REDIS_PORT and redis-server is not installed" >&2
    status=1
  fi
fi

[ "$status" -eq 0 ] && echo "PostgreSQL and Redis are answering"
exit "$status"
