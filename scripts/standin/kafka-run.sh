#!/usr/bin/env bash
# /etc/kafka/docker/run of the kafka stand-in, like the real image's: NAME=value
# arguments set variables; CLUSTER_ID defaults to the image's; Kafka's own docker wrapper
# writes /opt/kafka/config/server.properties from the KAFKA_* variables (and the log
# configuration from /etc/kafka/docker, or /mnt/shared/config where one is mounted) and
# formats the storage unless it already is; then the broker runs in the foreground.
set -euo pipefail
for assignment in "$@"; do
  export "${assignment?}"
done
export CLUSTER_ID=${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}
status=0
out=$(/opt/kafka/bin/kafka-run-class.sh kafka.docker.KafkaDockerWrapper setup \
  --default-configs-dir /etc/kafka/docker --mounted-configs-dir /mnt/shared/config \
  --final-configs-dir /opt/kafka/config 2>&1) || status=$?
printf '%s\n' "$out"
if ((status)) && ! grep -qi "already formatted" <<<"$out"; then
  exit "$status"
fi
exec /opt/kafka/bin/kafka-server-start.sh /opt/kafka/config/server.properties
