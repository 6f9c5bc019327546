# Stand-in for Go's official bookworm image (golang:<version>-bookworm): the bookworm base
# with git, this machine's Go toolchain at /usr/local/go (scripts/standin-images.sh warns
# when its version is not the tag's) and the real image's environment (GOPATH /go, Go on
# PATH, GOTOOLCHAIN=local, workdir /go). The host's CA bundle and SSL_CERT_FILE live here,
# not in the project's Dockerfiles: TLS to the Go module proxy may pass a re-signing proxy.
ARG BASE
FROM ${BASE}
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
# Whatever bookworm ships now (a pinned Debian revision vanishes with the next security
# update); the image's label says it is a stand-in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /go/src /go/bin \
    && chmod -R 1777 /go
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV GOPATH=/go \
    GOTOOLCHAIN=local \
    PATH=/go/bin:/usr/local/go/bin:$PATH \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /go
