#!/bin/sh
# Like the official postgres image's entrypoint, for what this project uses: bare flags
# mean `postgres`; started as root it runs as the postgres user; on the first start (no
# PG_VERSION in PGDATA) it creates the cluster with the superuser POSTGRES_USER (default
# postgres) and the password POSTGRES_PASSWORD (required, as there), lets that password
# log in from anywhere (scram-sha-256; the container's own loopback is trusted, as there)
# and creates the database POSTGRES_DB (default: the user's name).
set -eu
case "${1:-}" in -* | "") set -- postgres "$@" ;; esac
if [ "$1" != postgres ]; then
  exec "$@"
fi
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?is not set: the database would accept no login}"
  user=${POSTGRES_USER:-postgres}
  database=${POSTGRES_DB:-$user}
  printf '%s\n' "$POSTGRES_PASSWORD" |
    initdb -D "$PGDATA" --username="$user" --pwfile=/dev/stdin --encoding=UTF8 --no-instructions
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    printf 'CREATE DATABASE "%s";\n' "$database" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres stand-in: created the cluster in $PGDATA, database $database"
fi
exec "$@"
