"""The key task-api signs its list cursors with: a secret of its own in every
environment, readable through the secret store, by task-api's service account alone in
Kubernetes."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.deploy_tools import app_configuration, by_kind
from harness.resources import REPO_ROOT
from task_api.settings import Settings

CURSOR_KEY = Settings().cursor_key_secret


def test_the_local_secrets_file_holds_a_cursor_key() -> None:
    assert json.loads((REPO_ROOT / "components" / "secrets.json").read_text())[CURSOR_KEY]


def allowed_secrets(config: Path) -> set[str]:
    [scope] = yaml.safe_load(config.read_text())["spec"]["secrets"]["scopes"]
    return set(scope["allowedSecrets"])


@pytest.mark.parametrize("directory", ["components/config", "components/compose/config"])
def test_only_task_api_may_read_the_cursor_key(directory: str) -> None:
    configs = {path.stem: path for path in (REPO_ROOT / directory).glob("*.yaml")}
    assert set(configs) == {"task-api", "notification-service"}
    assert allowed_secrets(configs["task-api"]) == {"task-api-key", CURSOR_KEY}
    assert allowed_secrets(configs["notification-service"]) == {"task-api-key"}


def test_in_kubernetes_only_task_api_reads_the_cursor_key(
    k8s_objects: list[dict[str, Any]],
) -> None:
    assert by_kind(k8s_objects, "Secret")[CURSOR_KEY]["stringData"][CURSOR_KEY]
    for app, allowed in (
        ("task-api", {"task-api-key", CURSOR_KEY}),
        ("notification-service", {"task-api-key"}),
    ):
        [scope] = app_configuration(k8s_objects, app)["spec"]["secrets"]["scopes"]
        assert set(scope["allowedSecrets"]) == allowed, app
    readers = {
        subject["name"]
        for binding in by_kind(k8s_objects, "RoleBinding").values()
        for rule in by_kind(k8s_objects, "Role")[binding["roleRef"]["name"]]["rules"]
        if CURSOR_KEY in rule.get("resourceNames", [])
        for subject in binding["subjects"]
    }
    task_api = by_kind(k8s_objects, "Deployment")["task-api"]["spec"]["template"]["spec"]
    assert readers == {task_api["serviceAccountName"]}
