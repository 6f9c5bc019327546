# Stand-in for the official apache/kafka image: the same Kafka release's jars
# (scripts/ensure-kafka.sh resolves them from Maven Central) on Debian bookworm's Java 17
# (the real image has Java 21), at the real image's paths and user (appuser, uid 1000).
# Its /etc/kafka/docker/run does what the real one does: every KAFKA_* variable becomes a
# line of server.properties (KAFKA_NUM_PARTITIONS -> num.partitions), rendered by Kafka's
# own kafka.docker.KafkaDockerWrapper from the same jars, which also formats the storage
# with CLUSTER_ID on the first start; then the broker. Unlike the real image: no default
# configuration when no KAFKA_* variable is set, and bin/ holds only the scripts
# kafka-bin.sh lists (the jars come without them).
ARG BASE
FROM ${BASE}
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
# Whatever bookworm ships now (a pinned Debian revision vanishes with the next security
# update); the image's label says it is a stand-in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --uid 1000 --user-group --create-home --shell /bin/bash appuser \
    && mkdir -p /opt/kafka/bin /opt/kafka/config /var/lib/kafka/data /etc/kafka/secrets \
       /etc/kafka/docker /mnt/shared/config
COPY libs /opt/kafka/libs
COPY kafka-bin.sh /opt/kafka/bin/kafka-run-class.sh
COPY kafka-run.sh /etc/kafka/docker/run
COPY kafka-log4j2.yaml /etc/kafka/docker/log4j2.yaml
COPY kafka-tools-log4j2.yaml /etc/kafka/docker/tools-log4j2.yaml
RUN for name in kafka-server-start kafka-storage kafka-topics kafka-consumer-groups \
      kafka-broker-api-versions; do \
      ln -s kafka-run-class.sh "/opt/kafka/bin/$name.sh"; \
    done \
    && cp /etc/kafka/docker/log4j2.yaml /etc/kafka/docker/tools-log4j2.yaml /opt/kafka/config/ \
    && chown -R appuser:appuser /opt/kafka /mnt/shared/config \
    && chown -R appuser:root /var/lib/kafka /etc/kafka \
    && chmod -R ug+w /etc/kafka /var/lib/kafka
EXPOSE 9092
# appuser
USER 1000
CMD ["/etc/kafka/docker/run"]
