"""Property-based tests of both services' OpenAPI schemas with schemathesis, against
the real apps and their sidecars: no 5xx, and every response (status code, content
type, headers, body) as the schema documents it; input outside the schema refused.

Not checked: acceptance of every schema-valid request (the domain rightly refuses a
stale If-Match, a reused Idempotency-Key, or a status named two different ways), and the
`Allow` header of 405 answers (Starlette names only one route's methods there)."""

import subprocess
import sys
from pathlib import Path

import pytest

from harness.stack import Stack

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)


@pytest.mark.parametrize("service", ["task-api", "notification-service"])
def test_the_openapi_schema_holds_under_generated_requests(stack: Stack, service: str) -> None:
    if service == "task-api":
        url, header = stack.task_api.url, f"X-API-Key: {stack.api_key}"
    else:
        # notify is the sidecar's to call: present its token, as daprd does.
        url, header = stack.notification_service.url, f"dapr-api-token: {stack.app_api_token}"
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run", f"{url}/openapi.json",
            "--checks", CHECKS,
            "--max-examples", "40",
            "--generation-deterministic",
            "-H", header,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-8000:]
