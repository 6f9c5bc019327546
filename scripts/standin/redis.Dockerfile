# Stand-in for the official redis image: Debian bookworm's redis-server (7.0.15) with an
# entrypoint that behaves like the official one.
ARG BASE
FROM ${BASE}
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
# Whatever bookworm ships now (a pinned Debian revision vanishes with the next security
# update); the image's label says it is a stand-in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /data
COPY redis-entry.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
