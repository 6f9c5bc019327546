"""A real Jaeger (the trace backend) on free loopback ports: OTLP in, the query API out,
spans kept in memory for as long as it runs."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.processes import ManagedProcess, free_port, wait_until
from harness.resources import REPO_ROOT
from harness.tools import provided


@dataclass
class Span:
    """One span of a trace as Jaeger's query API returns it."""

    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str | None
    tags: dict[str, Any]


@dataclass
class Jaeger:
    workdir: Path
    otlp_port: int = field(default_factory=free_port)
    otlp_http_port: int = field(default_factory=free_port)
    query_port: int = field(default_factory=free_port)
    query_grpc_port: int = field(default_factory=free_port)
    process: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        loopback = "127.0.0.1"
        self.process = ManagedProcess(
            "jaeger",
            [
                str(provided("TASK_PLATFORM_JAEGER", "ensure-jaeger.sh")),
                f"--config={REPO_ROOT / 'components' / 'tracing' / 'jaeger-local.yaml'}",
                # The configuration of `make up`, on ports of this stack's own.
                f"--set=receivers.otlp.protocols.grpc.endpoint={loopback}:{self.otlp_port}",
                f"--set=receivers.otlp.protocols.http.endpoint={loopback}:{self.otlp_http_port}",
                f"--set=extensions.jaeger_query.http.endpoint={loopback}:{self.query_port}",
                f"--set=extensions.jaeger_query.grpc.endpoint={loopback}:{self.query_grpc_port}",
            ],
            self.workdir / "jaeger.log",
        )

    @property
    def otlp_address(self) -> str:
        """Where daprd's otel exporter sends (host:port, OTLP/gRPC)."""
        return f"127.0.0.1:{self.otlp_port}"

    @property
    def otlp_endpoint(self) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for the apps."""
        return f"http://{self.otlp_address}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def start(self, timeout: float = 30.0) -> None:
        self.process.start()
        wait_until(self._answers, timeout=timeout, what="jaeger query API")

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.query_url}/api/services", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False


async def trace_ids(
    client: httpx.AsyncClient, query_url: str, service: str, tags: dict[str, str]
) -> list[str]:
    """Ids of the traces with a span of `service` carrying all `tags`, from the Jaeger
    query API at `query_url`."""
    response = await client.get(
        f"{query_url}/api/traces",
        params={"service": service, "tags": json.dumps(tags), "limit": 20},
    )
    response.raise_for_status()
    return [found["traceID"] for found in response.json()["data"] or []]


async def trace_spans(client: httpx.AsyncClient, query_url: str, trace_id: str) -> list[Span]:
    """Every span the Jaeger query API at `query_url` holds of one trace."""
    response = await client.get(f"{query_url}/api/traces/{trace_id}")
    if response.status_code == 404:
        return []
    response.raise_for_status()
    [found] = response.json()["data"]
    services = {key: p["serviceName"] for key, p in found["processes"].items()}
    spans = []
    for span in found["spans"]:
        tags = {tag["key"]: tag["value"] for tag in span.get("tags", [])}
        parents = [
            ref["spanID"]
            for ref in span.get("references", [])
            if ref["refType"] == "CHILD_OF" and ref["traceID"] == trace_id
        ]
        spans.append(
            Span(
                span_id=span["spanID"],
                parent_id=parents[0] if parents else None,
                service=services[span["processID"]],
                name=span["operationName"],
                kind=tags.get("span.kind"),
                tags=tags,
            )
        )
    return spans
