# Stand-in for the Dockerfile frontend that `# syntax=docker/dockerfile:1` names: BuildKit's
# dockerfile-frontend built from the github.com/moby/buildkit module (BUILDKIT_VERSION).
FROM scratch
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true" \
      moby.buildkit.frontend.network.none="true" \
      moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
COPY dockerfile-frontend /bin/dockerfile-frontend
ENTRYPOINT ["/bin/dockerfile-frontend"]
