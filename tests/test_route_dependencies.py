"""Both services: no request pays for a thread hop.

FastAPI runs a plain-def endpoint or dependency in a worker thread; profiling found one
on the hot path of every request. Every route and every dependency must be async."""

import inspect
from types import ModuleType

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

import dapr_service_kit.health
import notification_service.api
import notification_service.events
import task_api.api
import task_api.events

ROUTERS = [
    task_api.api,
    task_api.events,
    notification_service.api,
    notification_service.events,
    dapr_service_kit.health,
]


def calls(dependant: Dependant) -> list[object]:
    return [d.call for d in dependant.dependencies] + [
        c for d in dependant.dependencies for c in calls(d)
    ]


@pytest.mark.parametrize("module", ROUTERS, ids=lambda m: m.__name__)
def test_routes_and_dependencies_are_async(module: ModuleType) -> None:
    routes = [r for r in module.router.routes if isinstance(r, APIRoute)]
    assert routes
    for route in routes:
        assert inspect.iscoroutinefunction(route.endpoint), route.path
        for call in calls(route.dependant):
            assert inspect.iscoroutinefunction(call), (route.path, call)
