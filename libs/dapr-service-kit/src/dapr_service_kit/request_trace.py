"""The trace of each request: while it is handled, its trace context is current, so that
the log lines carry it (logs.py) and the calls to the sidecar pass it on; while spans
are exported (tracing.py) the request also gets a server span, named after its route.

Whose trace context counts (trace_edge.py): the sidecar's decides; a public caller's is
continued only as the sampler decides, and while nothing is exported not taken at all
(passed on to the sidecar, its sampled flag would decide what the sidecar records).
All-zero ids (daprd's while its tracing is off) are no trace and are dropped.

Why not FastAPI's own telemetry: it wraps send and receive, builds the span's
attributes and enters the span before it is known whether the span is recorded. With
reads sampled at one in a hundred, that was most of what tracing still cost a read
(about a quarter of GET throughput, bench/results/profiles/). Here a request whose span
is not recorded costs one extraction, one sampling decision and a context switch.
"""

from collections.abc import Iterable

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dapr_service_kit import tracing
from dapr_service_kit.trace_edge import METHOD_ATTRIBUTE, from_public_caller

Headers = Iterable[tuple[bytes, bytes]]


class _RawHeaders(Getter[Headers]):
    """Reads the ASGI scope's header list as it is: no Starlette Headers per request."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        found = [value.decode("latin-1") for name, value in carrier if name.lower() == wanted]
        return found or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_GETTER = _RawHeaders()
# Resolves to the provider configure_tracing sets, whenever that happens.
_TRACER = trace.get_tracer(__name__)


class RequestTrace:
    """ASGI middleware: the request's trace context, and its server span when one is
    recorded. Probes and scrapes (tracing.UNTRACED_PATHS) pass untouched. A test may
    give spans a provider of its own (`tracer_provider`: spans are then made whether or
    not the process exports)."""

    def __init__(self, app: ASGIApp, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._app = app
        self._tracer = tracer_provider.get_tracer(__name__) if tracer_provider else _TRACER
        self._spans = tracer_provider is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in tracing.UNTRACED_PATHS:
            await self._app(scope, receive, send)
            return
        extracted = propagate.extract(scope["headers"], getter=_GETTER)
        if not (self._spans or tracing.exporting()):
            if from_public_caller(extracted):
                await self._app(scope, receive, send)
            else:
                await self._within(extracted, scope, receive, send)
            return
        method = scope["method"]
        span = self._tracer.start_span(
            method, context=extracted, kind=SpanKind.SERVER, attributes={METHOD_ATTRIBUTE: method}
        )
        if not span.is_recording():
            # Still current: the calls to the sidecar pass on that it is not sampled.
            await self._within(trace.set_span_in_context(span, extracted), scope, receive, send)
            return
        await self._recorded(span, extracted, scope, receive, send)

    async def _within(
        self, current: context.Context, scope: Scope, receive: Receive, send: Send
    ) -> None:
        token = context.attach(current)
        try:
            await self._app(scope, receive, send)
        finally:
            context.detach(token)

    async def _recorded(
        self,
        span: trace.Span,
        extracted: context.Context,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        status_code = 500

        async def sending(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self._within(trace.set_span_in_context(span, extracted), scope, receive, sending)
        except BaseException as error:
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__qualname__)
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
            # What a trace is read for; every attribute is encoded and exported again.
            span.set_attributes(
                {"url.path": scope["path"], "http.response.status_code": status_code}
            )
            if status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
