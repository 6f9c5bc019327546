#!/usr/bin/env bash
# The scripts of Kafka's bin/ that the kafka stand-in carries, one file installed under
# each name (the jars from Maven Central come without them): kafka-run-class.sh <class>
# [args], kafka-server-start.sh, kafka-storage.sh, kafka-topics.sh,
# kafka-consumer-groups.sh and kafka-broker-api-versions.sh. Like Kafka's own, they
# honour KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_GC_LOG_OPTS, KAFKA_JMX_OPTS,
# KAFKA_LOG4J_OPTS and KAFKA_OPTS, with the same defaults (the broker 1 GiB of heap, a
# tool 256 MiB).
set -euo pipefail
config=/opt/kafka/config
heap=${KAFKA_HEAP_OPTS:--Xmx256M}
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$config/tools-log4j2.yaml}
case ${0##*/} in
  kafka-server-start.sh)
    main=kafka.Kafka
    heap=${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
    log4j=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$config/log4j2.yaml} ;;
  kafka-storage.sh) main=kafka.tools.StorageTool ;;
  kafka-topics.sh) main=org.apache.kafka.tools.TopicCommand ;;
  kafka-consumer-groups.sh) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  kafka-broker-api-versions.sh) main=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
  *) main=$1; shift ;;
esac
performance=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
# Option lists, split on spaces as Kafka's scripts split them.
# shellcheck disable=SC2086
exec "${JAVA_HOME:+$JAVA_HOME/bin/}java" $heap $performance ${KAFKA_GC_LOG_OPTS:-} \
  ${KAFKA_JMX_OPTS:-} $log4j -cp "/opt/kafka/libs/*" ${KAFKA_OPTS:-} "$main" "$@"
