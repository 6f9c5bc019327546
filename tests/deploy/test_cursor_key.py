"""The key task-api signs its list cursors with: a secret of its own in every
environment, readable through the secret store, by task-api's service account alone in
Kubernetes."""

import json
from typing import Any

import yaml

from harness.resources import REPO_ROOT
from task_api.settings import Settings

CURSOR_KEY = Settings().cursor_key_secret


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_the_local_secrets_file_holds_a_cursor_key() -> None:
    assert json.loads((REPO_ROOT / "components" / "secrets.json").read_text())[CURSOR_KEY]


def test_every_secret_scope_lets_the_cursor_key_through() -> None:
    for config in ("components/config.yaml", "components/compose/config.yaml"):
        [scope] = yaml.safe_load((REPO_ROOT / config).read_text())["spec"]["secrets"]["scopes"]
        assert CURSOR_KEY in scope["allowedSecrets"], config


def test_in_kubernetes_only_task_api_reads_the_cursor_key(
    k8s_objects: list[dict[str, Any]],
) -> None:
    assert by_kind(k8s_objects, "Secret")[CURSOR_KEY]["stringData"][CURSOR_KEY]
    [config] = by_kind(k8s_objects, "Configuration").values()
    [scope] = config["spec"]["secrets"]["scopes"]
    assert CURSOR_KEY in scope["allowedSecrets"]
    readers = {
        subject["name"]
        for binding in by_kind(k8s_objects, "RoleBinding").values()
        for rule in by_kind(k8s_objects, "Role")[binding["roleRef"]["name"]]["rules"]
        if CURSOR_KEY in rule.get("resourceNames", [])
        for subject in binding["subjects"]
    }
    task_api = by_kind(k8s_objects, "Deployment")["task-api"]["spec"]["template"]["spec"]
    assert readers == {task_api["serviceAccountName"]}
