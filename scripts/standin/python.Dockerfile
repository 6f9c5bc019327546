# Stand-in for the official python slim image: Debian bookworm's python3 (3.11.2, where the
# real image has 3.11.14). The host's CA bundle and SSL_CERT_FILE/UV_NATIVE_TLS live here,
# not in the project's Dockerfiles: TLS to the package index may pass a re-signing proxy.
ARG BASE
FROM ${BASE}
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
# Whatever bookworm ships now (a pinned Debian revision vanishes with the next security
# update); the image's label says it is a stand-in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && ln -s /usr/bin/python3 /usr/local/bin/python
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    UV_NATIVE_TLS=1
CMD ["python3"]
