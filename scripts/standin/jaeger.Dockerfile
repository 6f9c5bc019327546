# Stand-in for the official Jaeger v2 all-in-one image: the jaeger binary that
# scripts/ensure-jaeger.sh builds from the Go module (JAEGER_VERSION, the module tag of the
# same release), at the path, user and environment of the real image. Run without
# arguments, like the real one, it uses its built-in all-in-one configuration: in-memory
# storage, OTLP on 4317 (gRPC) and 4318 (HTTP), the query API and UI on 16686, health on
# 13133 (/status), all on every interface because of JAEGER_LISTEN_HOST.
# Unlike the real image: the UI is a placeholder page (its JavaScript is not in the Go
# module; the HTTP API under /api is the real one), and there is no Alpine underneath (no
# shell, no CA certificates, no /tmp), which in-memory storage does not need.
FROM scratch
ARG STANDIN_FOR
LABEL org.opencontainers.image.description="local stand-in for ${STANDIN_FOR}, built by task-platform because the registry could not be reached" \
      org.task-platform.standin="true"
ENV JAEGER_LISTEN_HOST=0.0.0.0
COPY jaeger /cmd/jaeger/jaeger-linux
# The real image's list: remote sampling, OTLP, Zipkin, Jaeger's own protocols, query/UI,
# health (gRPC and HTTP).
EXPOSE 4317 4318 5778 5779 9411 13132 13133 14250 14268 16686
USER 10001
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
