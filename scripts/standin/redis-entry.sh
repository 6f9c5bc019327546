#!/bin/sh
# Like the official image's entrypoint: bare flags mean redis-server, and without a config
# file protected mode is off (other containers connect over the network, without a password).
set -e
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = "redis-server" ]; then
  shift
  set -- redis-server "$@" --protected-mode no
fi
exec "$@"
