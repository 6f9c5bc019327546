"""One trace follows a task: from the REST call through the state transaction and its
outbox event to each delivery and, for a completion, to the `notify` invocation; read
back from Jaeger's query API, with every span's parent."""

import secrets
from collections.abc import Callable

import httpx
import pytest

from harness.jaeger import Span, trace_ids, trace_spans
from harness.polling import eventually
from harness.stack import RunningStack, task_api_client

# Spans reach Jaeger in batches, the sidecars' every few seconds.
WITHIN = 45.0


@pytest.fixture
def traces_url(stack: RunningStack) -> str:
    if stack.traces_url is None:
        pytest.skip("this stack sends its spans nowhere the tests can read")
    return stack.traces_url


def one(spans: list[Span], service: str, name: str, parent: Span | None = None) -> Span:
    """The single span of that service and name (under `parent`, if given)."""
    found = [
        s
        for s in spans
        if s.service == service
        and s.name == name
        and (parent is None or s.parent_id == parent.span_id)
    ]
    under = f" under {parent.service} {parent.name!r}" if parent else ""
    assert len(found) == 1, f"{len(found)} spans {service} {name!r}{under} in {describe(spans)}"
    return found[0]


def describe(spans: list[Span]) -> str:
    return "; ".join(f"{s.service} {s.name!r} ({s.span_id} <- {s.parent_id})" for s in spans)


def ancestors(spans: list[Span], span: Span) -> list[Span]:
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


async def complete_trace(
    traces_url: str, task_id: str, root: str, complete: Callable[[list[Span]], bool]
) -> list[Span]:
    """The spans of the trace whose task-api span `root` carries this task, once
    `complete` holds for them."""

    async def spans() -> list[Span] | None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            for trace_id in await trace_ids(client, traces_url, "task-api", {"task.id": task_id}):
                found = await trace_spans(client, traces_url, trace_id)
                if any(s.name == root for s in found) and complete(found):
                    return found
        return None

    return await eventually(spans, within=WITHIN, what=f"the trace of {root} of task {task_id}")


def has(*names: str, outside: str | None = None) -> Callable[[list[Span]], bool]:
    """The trace holds a span of each of these names (twice a name given twice), and
    every span's parent has arrived (the sidecars' spans come in batches of their own)
    but for `outside`, the caller's."""

    def complete(spans: list[Span]) -> bool:
        known = {s.span_id for s in spans} | {None, outside}
        present = [s.name for s in spans]
        return all(present.count(n) >= names.count(n) for n in names) and all(
            s.parent_id in known for s in spans
        )

    return complete


async def test_a_create_is_one_trace_from_the_call_to_the_delivery(
    stack: RunningStack, traces_url: str
) -> None:
    async with task_api_client(stack) as api:
        task = (await api.post("/tasks", json={"title": "Traced"})).json()
    spans = await complete_trace(
        traces_url,
        task["id"],
        "POST /tasks",
        # The sidecar's span of the transaction: a leaf, which the parents of the
        # others cannot tell is still to come.
        has("POST /events/task-events", "/dapr.proto.runtime.v1.Dapr/ExecuteStateTransaction"),
    )

    request = one(spans, "task-api", "POST /tasks")
    assert request.kind == "server"
    assert request.parent_id is None  # the caller sent no trace: the API starts one
    # The request's span carries the task and its event, and the event's deliveries
    # are its children.
    assert request.tags["task.id"] == task["id"]
    delivery = one(spans, "notification-service", "pubsub/task-events", parent=request)
    handled = one(spans, "notification-service", "POST /events/task-events", parent=delivery)
    assert handled.kind == "server"
    # The sidecar's own span of the transaction is the child of the app's span that
    # made the call; the app records no span of its own for a call to its sidecar.
    [call] = [s for s in spans if s.name.endswith("/ExecuteStateTransaction")]
    assert ancestors(spans, call) == [request], describe(spans)


async def test_a_completion_traces_through_the_subscriber_to_notify(
    stack: RunningStack, traces_url: str
) -> None:
    async with task_api_client(stack) as api:
        created = await api.post("/tasks", json={"title": "Traced to the end"})
        task = created.json()
        done = await api.put(
            f"/tasks/{task['id']}/status",
            json={"status": "completed"},
            headers={"If-Match": created.headers["ETag"]},
        )
        assert done.status_code == 200, done.text
    spans = await complete_trace(
        traces_url,
        task["id"],
        "PUT /tasks/{task_id}/status",
        has("POST /events/task-completed", "POST /notify", "POST /events/task-events"),
    )

    request = one(spans, "task-api", "PUT /tasks/{task_id}/status")
    publish = request
    # One event, two subscribers: each delivery is a child of the request that published it.
    one(spans, "notification-service", "pubsub/task-events", parent=publish)
    to_task_api = one(spans, "task-api", "pubsub/task-events", parent=publish)
    subscriber = one(spans, "task-api", "POST /events/task-completed", parent=to_task_api)
    notify = one(spans, "notification-service", "POST /notify")
    assert notify.kind == "server"
    # task-api's call, through both sidecars, to notification-service's route.
    path = ancestors(spans, notify)
    assert subscriber in path, describe(spans)
    assert [s.service for s in path[: path.index(subscriber)]] == [
        "notification-service",  # its sidecar, receiving the invocation
        "task-api",  # task-api's sidecar, invoking
        "task-api",  # task-api's HTTP call to its sidecar
    ], describe(spans)


async def test_the_callers_trace_is_continued(stack: RunningStack, traces_url: str) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    async with task_api_client(stack) as api:
        task = (
            await api.post(
                "/tasks",
                json={"title": "In the caller's trace"},
                headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
            )
        ).json()
    spans = await complete_trace(
        traces_url,
        task["id"],
        "POST /tasks",
        has("POST /events/task-events", outside=caller_span),
    )
    async with httpx.AsyncClient(timeout=10.0) as client:
        assert await trace_spans(client, traces_url, trace_id) != []
    assert one(spans, "task-api", "POST /tasks").parent_id == caller_span
