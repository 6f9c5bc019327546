"""The whole system on free ports: redis-server, a daprd per service, both apps."""

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from harness.backends import Backend, selected_backend
from harness.jaeger import Jaeger
from harness.processes import ManagedProcess, free_port, wait_until
from harness.reset_proxy import ProxyProcess
from harness.resources import write_resources
from harness.tools import provided

START_TIMEOUT = 60.0


def _http_ok(url: str, expected: tuple[int, ...] = (200, 204)) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code in expected
    except httpx.HTTPError:
        return False


@dataclass
class Service:
    """One replica of an app: the app and its own sidecar, under the app's app-id."""

    app_id: str
    module: str
    replica: int = 1
    app_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    internal_grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    sidecar_metrics_port: int = field(default_factory=free_port)
    sidecar: ManagedProcess | None = None
    app: ManagedProcess | None = None
    # Between the sidecar and the app, when the stack puts one there (`reset_proxies`).
    proxy: ProxyProcess | None = None

    @property
    def name(self) -> str:
        """The app-id, with the replica's number from the second replica on."""
        return self.app_id if self.replica == 1 else f"{self.app_id}-{self.replica}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def sidecar_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def sidecar_metrics_url(self) -> str:
        """daprd's own Prometheus metrics (calls to its APIs by method, ...)."""
        return f"http://127.0.0.1:{self.sidecar_metrics_port}/metrics"

    def sidecar_healthy(self) -> bool:
        return _http_ok(f"{self.sidecar_url}/v1.0/healthz")

    def app_ready(self) -> bool:
        return _http_ok(f"{self.url}/ready", (200,))

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        wait_until(
            self.sidecar_healthy, timeout=timeout, what=f"{self.app_id} sidecar /v1.0/healthz"
        )
        wait_until(self.app_ready, timeout=timeout, what=f"{self.app_id} /ready")

    def processes(self) -> list[ManagedProcess]:
        proxy = self.proxy.process if self.proxy else None
        return [p for p in (self.sidecar, self.app, proxy) if p is not None]


class AppEndpoint(Protocol):
    @property
    def app_id(self) -> str: ...
    @property
    def url(self) -> str: ...


class RunningStack(Protocol):
    """What the contract and event-flow tests use: this harness's own Stack, or a
    deployed one (harness.deployed) that they reach from outside."""

    @property
    def api_key(self) -> str: ...
    @property
    def task_api(self) -> AppEndpoint: ...
    @property
    def notification_service(self) -> AppEndpoint: ...
    @property
    def traces_url(self) -> str | None:
        """Jaeger's query API, where the stack's spans go (None: not traced)."""
        ...

    def app_log_lines(self, app_id: str, needle: str) -> list[str]: ...
    async def publish_raw(
        self, body: bytes, *, content_type: str, cloudevent_id: str | None = None
    ) -> None: ...
    def log_tails(self) -> str: ...


class Stack:
    """`replicas` of each app-id, each replica with its own sidecar: name resolution
    finds them all, and they share their app-id's consumer groups, as pods do. With
    `tracing`, a Jaeger of its own receives the spans of every app and sidecar. The
    state store and broker are the `backend` profile's (default: TASK_PLATFORM_BACKEND,
    else redis). `daprd` is "project" (the pinned release with the fixes the project
    carries, third_party/dapr) or "stock" (as Dapr ships it). The sidecars of the
    app-ids in `reset_proxies` call their app through a harness.reset_proxy."""

    def __init__(
        self,
        workdir: Path,
        component_metadata: Mapping[str, Mapping[str, str]] | None = None,
        replicas: int = 1,
        tracing: bool = True,
        backend: str | None = None,
        daprd: str = "project",
        reset_proxies: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.jaeger = Jaeger(workdir) if tracing else None
        self.backend = Backend(workdir, backend or selected_backend())
        self.replicas = {
            app_id: [Service(app_id, module, replica=n + 1) for n in range(replicas)]
            for app_id, module in (
                ("task-api", "task_api.main:app"),
                ("notification-service", "notification_service.main:app"),
            )
        }
        self.task_api = self.replicas["task-api"][0]
        self.notification_service = self.replicas["notification-service"][0]
        # App and sidecar authenticate each other, as in every environment.
        self.dapr_api_token = secrets.token_urlsafe(24)
        self.app_api_token = secrets.token_urlsafe(24)
        # The tokens sit in the secrets file too, as for `make up`: scoping must hide them.
        self.resources_dir, self.config_files, self.api_key = write_resources(
            workdir,
            backend=self.backend.name,
            addresses=self.backend.addresses,
            other_secrets={
                "dapr-api-token": self.dapr_api_token,
                "app-api-token": self.app_api_token,
            },
            component_metadata=component_metadata,
            otlp_address=self.jaeger.otlp_address if self.jaeger else None,
        )
        runtime = (
            provided("TASK_PLATFORM_STOCK_DAPR_RUNTIME_PATH", "ensure-dapr.sh", "stock")
            if daprd == "stock"
            else provided("TASK_PLATFORM_DAPR_RUNTIME_PATH", "ensure-dapr.sh")
        )
        daprd_binary = runtime / ".dapr" / "bin" / "daprd"
        for service in self.services:
            if service.app_id in reset_proxies:
                service.proxy = ProxyProcess(f"{service.name}-proxy", service.app_port, workdir)
            service.sidecar = self._sidecar(service, daprd_binary)
            service.app = self._app(service)

    @property
    def traces_url(self) -> str | None:
        return self.jaeger.query_url if self.jaeger else None

    @property
    def services(self) -> list[Service]:
        return [service for replicas in self.replicas.values() for service in replicas]

    @property
    def processes(self) -> list[ManagedProcess]:
        tracer = [self.jaeger.process] if self.jaeger else []
        servers = [server.process for server in self.backend.servers]
        return tracer + servers + [p for s in self.services for p in s.processes()]

    def _sidecar(self, service: Service, daprd: Path) -> ManagedProcess:
        return ManagedProcess(
            f"{service.name}-daprd",
            [
                str(daprd),
                "--app-id", service.app_id,
                "--app-port", str(service.proxy.listen_port if service.proxy else service.app_port),
                "--app-protocol", "http",
                "--app-channel-address", "127.0.0.1",
                "--dapr-http-port", str(service.http_port),
                "--dapr-grpc-port", str(service.grpc_port),
                "--dapr-internal-grpc-port", str(service.internal_grpc_port),
                "--dapr-listen-addresses", "127.0.0.1",
                "--dapr-internal-grpc-listen-address", "127.0.0.1",
                # Metrics on, as `make up` and the cluster run daprd: what they cost is
                # part of what the tests and the bench measure, and the bench counts
                # the app's calls to its sidecar with them.
                "--enable-metrics=true",
                "--metrics-port", str(service.sidecar_metrics_port),
                "--metrics-listen-address", "127.0.0.1",
                "--resources-path", str(self.resources_dir),
                "--config", str(self.config_files[service.app_id]),
                # TASK_PLATFORM_DAPRD_LOG_LEVEL=debug also shows the pub/sub clients' own logs.
                "--log-level", os.environ.get("TASK_PLATFORM_DAPRD_LOG_LEVEL", "info"),
            ],
            self.workdir / f"{service.name}-daprd.log",
            env={
                # Announce a loopback address in name resolution: the machine may have
                # no other interface that the other sidecar can reach.
                "DAPR_HOST_IP": "127.0.0.1",
                "DAPR_API_TOKEN": self.dapr_api_token,
                "APP_API_TOKEN": self.app_api_token,
            },
        )  # fmt: skip

    def _app(self, service: Service) -> ManagedProcess:
        return ManagedProcess(
            service.name,
            [
                sys.executable, "-m", "uvicorn", service.module,
                "--host", "127.0.0.1",
                "--port", str(service.app_port),
                "--no-access-log",
            ],
            self.workdir / f"{service.name}.log",
            env={
                # The app's settings prefix: TASK_API_, NOTIFICATION_SERVICE_.
                service.app_id.upper().replace("-", "_") + "_METRICS_PORT": str(
                    service.metrics_port
                ),
                "DAPR_HTTP_PORT": str(service.http_port),
                "DAPR_GRPC_PORT": str(service.grpc_port),
                "DAPR_API_TOKEN": self.dapr_api_token,
                "APP_API_TOKEN": self.app_api_token,
                "PYTHONUNBUFFERED": "1",
                **self._tracing_env(),
                **self.backend.app_env,
            },
        )  # fmt: skip

    def _tracing_env(self) -> dict[str, str]:
        if self.jaeger is None:
            return {}
        # Batches every half second instead of every five: a test reads a trace sooner.
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.jaeger.otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }

    def start(self) -> None:
        if self.jaeger:
            self.jaeger.start()
        self.backend.start()
        for n, service in enumerate(self.services):
            assert service.sidecar is not None
            assert service.app is not None
            service.sidecar.start()
            service.app.start()
            if service.proxy:
                service.proxy.process.start()
            if n == 0 and self.backend.first_sidecar_migrates:
                service.wait_ready()
        for service in self.services:
            service.wait_ready()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def app_log_lines(self, app_id: str, needle: str) -> list[str]:
        """Matching lines of every replica of the app-id."""
        return [
            line
            for service in self.replicas[app_id]
            if service.app is not None
            for line in log_lines(service.app, needle)
        ]

    async def publish_raw(
        self, body: bytes, *, content_type: str, cloudevent_id: str | None = None
    ) -> None:
        """Publish to task-events through task-api's sidecar, as any producer could."""
        params = {"metadata.cloudevent.id": cloudevent_id} if cloudevent_id else {}
        async with httpx.AsyncClient(base_url=self.task_api.sidecar_url) as sidecar:
            response = await sidecar.post(
                "/v1.0/publish/pubsub/task-events",
                content=body,
                params=params,
                headers={"Content-Type": content_type, "dapr-api-token": self.dapr_api_token},
            )
        assert response.status_code == 204, response.text

    def log_tails(self, lines: int = 40) -> str:
        return "\n\n".join(
            f"===== {p.name} ({p.log_path}) =====\n{p.log_tail(lines)}" for p in self.processes
        )


def task_api_client(stack: RunningStack, replica: AppEndpoint | None = None) -> httpx.AsyncClient:
    """A client of task-api (or of one of its replicas) that presents the run's API key."""
    return httpx.AsyncClient(
        base_url=(replica or stack.task_api).url,
        headers={"X-API-Key": stack.api_key},
        timeout=30.0,
    )


async def list_all_tasks(
    client: httpx.AsyncClient, *, limit: int = 100, **params: Any
) -> list[dict[str, Any]]:
    """Every task task-api lists, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/tasks", params=query)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def notification_client(stack: RunningStack) -> httpx.AsyncClient:
    """A client of notification-service's feed, which takes task-api's key."""
    return httpx.AsyncClient(
        base_url=stack.notification_service.url,
        headers={"X-API-Key": stack.api_key},
        timeout=30.0,
    )


async def notifications_for(
    client: httpx.AsyncClient, task_id: str, kind: str
) -> list[dict[str, object]]:
    """notification-service's recent notifications of one kind about one task."""
    response = await client.get("/notifications", params={"limit": 200})
    response.raise_for_status()
    items: list[dict[str, object]] = response.json()["items"]
    return [n for n in items if n["task_id"] == task_id and n["kind"] == kind]


def log_lines(process: ManagedProcess, needle: str) -> list[str]:
    return [line for line in process.log_path.read_text().splitlines() if needle in line]


def task_events_of(stack: Stack, task_id: str) -> list[str]:
    """The entries of the task-events stream that name the task, as Redis keeps them
    (the Redis profile only)."""
    assert stack.backend.redis is not None
    return stack.backend.redis.stream_entries("task-events", task_id)
