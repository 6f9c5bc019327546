# Stand-in for the official postgres image: Debian bookworm's PostgreSQL 15 (the minor
# release bookworm ships, which may trail the tag's) at the real image's paths and user
# (postgres, uid 999; PGDATA /var/lib/postgresql/data), with an entrypoint that does what
# the official one does with POSTGRES_PASSWORD, POSTGRES_USER and POSTGRES_DB.
ARG BASE
FROM ${BASE}
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
# The real image's user, created before the package so that the package takes it over; no
# cluster made at install time (the entrypoint makes one in PGDATA on the first start);
# listening on every interface, as the real image's configuration does.
# Whatever bookworm ships now (a pinned Debian revision vanishes with the next security
# update); the image's label says it is a stand-in.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres \
    && mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/standin.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" /usr/share/postgresql/15/postgresql.conf.sample \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 3777 /var/run/postgresql
COPY postgres-entry.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=$PATH:/usr/lib/postgresql/15/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
EXPOSE 5432
# A fast shutdown, as the real image asks for (SIGTERM would wait for every client).
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
