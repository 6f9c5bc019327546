# Stand-in for the official daprd image: the pinned, statically linked daprd that
# scripts/ensure-dapr.sh builds, at /daprd (the compose file runs ./daprd from /).
FROM scratch
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
COPY daprd /daprd
WORKDIR /
CMD ["/daprd"]
