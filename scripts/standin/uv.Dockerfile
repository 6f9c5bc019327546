# Stand-in for the official uv image: uv and uvx from the uv wheel on PyPI, nothing else.
FROM scratch
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
COPY uv uvx /
ENTRYPOINT ["/uv"]
