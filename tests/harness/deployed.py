"""A stack the tests did not start: docker compose or a Kubernetes cluster, reached on
its published ports. `make e2e-compose` and `make e2e-k8s` point the contract and
event-flow tests at one with these variables:

    TASK_PLATFORM_STACK=external
    TASK_API_URL, NOTIFICATION_URL    where the apps answer (published / forwarded ports)
    TASK_API_KEY                      the deployment's API key
    TASK_PLATFORM_APP_LOGS            command printing an app's log, `{app}` = app-id,
                                      e.g. `docker compose -p tp logs --no-color {app}`
    TASK_PLATFORM_APP_EXEC            command prefix running a program in an app's
                                      container, e.g. `kubectl -n task-platform exec -i
                                      deploy/{app} -c {app} --`
    TRACES_URL                        Jaeger's query API (optional: without it the
                                      trace tests are skipped)

The sidecars' ports are not published anywhere, so what a test sends to a sidecar goes
from inside the app's container, which shares the sidecar's network namespace and has
its API token.
"""

import asyncio
import os
import shlex
import subprocess
from dataclasses import dataclass

# Runs inside the app container (its image has Python, not curl): publishes stdin's
# bytes to task-events through the sidecar beside it.
_PUBLISH = """
import os, sys, urllib.parse, urllib.request
content_type, cloudevent_id = sys.argv[1], sys.argv[2]
query = urllib.parse.urlencode({"metadata.cloudevent.id": cloudevent_id} if cloudevent_id else {})
port = os.environ.get("DAPR_HTTP_PORT", "3500")
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/v1.0/publish/pubsub/task-events?{query}",
    data=sys.stdin.buffer.read(), method="POST",
    headers={"Content-Type": content_type, "dapr-api-token": os.environ["DAPR_API_TOKEN"]},
)
print(urllib.request.urlopen(request, timeout=10).status)
"""


def is_external() -> bool:
    return os.environ.get("TASK_PLATFORM_STACK") == "external"


@dataclass(frozen=True)
class Endpoint:
    app_id: str
    url: str


class DeployedStack:
    def __init__(self) -> None:
        self.task_api = Endpoint("task-api", os.environ["TASK_API_URL"])
        self.notification_service = Endpoint("notification-service", os.environ["NOTIFICATION_URL"])
        self.api_key = os.environ["TASK_API_KEY"]
        self._logs = os.environ["TASK_PLATFORM_APP_LOGS"]
        self._exec = os.environ["TASK_PLATFORM_APP_EXEC"]
        self.traces_url = os.environ.get("TRACES_URL")

    def _command(self, template: str, app_id: str) -> list[str]:
        return shlex.split(template.replace("{app}", app_id))

    def app_log_lines(self, app_id: str, needle: str) -> list[str]:
        log = subprocess.run(
            self._command(self._logs, app_id), check=True, capture_output=True, text=True
        )
        return [line for line in (log.stdout + log.stderr).splitlines() if needle in line]

    async def publish_raw(
        self, body: bytes, *, content_type: str, cloudevent_id: str | None = None
    ) -> None:
        command = [
            *self._command(self._exec, self.task_api.app_id),
            "python", "-c", _PUBLISH, content_type, cloudevent_id or "",
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(body)
        assert process.returncode == 0, (out + err).decode()
        assert out.strip() == b"204", (out + err).decode()

    def log_tails(self) -> str:
        return "\n\n".join(
            f"===== {app} =====\n" + "\n".join(self.app_log_lines(app, "")[-40:])
            for app in (self.task_api.app_id, self.notification_service.app_id)
        )
