"""Dapr resources for one test run: the repo's own `components/`, pointed at the test's
servers and at a secrets file with a key generated for the run."""

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = REPO_ROOT / "components"
HARNESS_PROCESSING_TIMEOUT = "15s"


def _set_metadata(resource: dict[str, Any], name: str, value: str) -> None:
    for item in resource.get("spec", {}).get("metadata", []) or []:
        if item["name"] == name:
            item["value"] = value


def write_resources(
    target: Path,
    *,
    backend: str,
    addresses: Mapping[str, str],
    other_secrets: dict[str, str],
    component_metadata: Mapping[str, Mapping[str, str]] | None = None,
    otlp_address: str | None = None,
) -> tuple[Path, dict[str, Path], str]:
    """Write resources and each app's Dapr Configuration under `target`;
    the components of the `backend` profile reach their servers at `addresses` (metadata
    values by name); `component_metadata` sets metadata values of named components (a
    test's variant);
    the sidecars send their spans to `otlp_address`, and trace nothing without one.

    Returns the resources directory, the configuration file of each app-id and the
    generated API key.
    """
    resources_dir = target / "resources"
    resources_dir.mkdir(parents=True)
    api_key = secrets.token_urlsafe(24)
    secrets_file = target / "secrets.json"
    secrets_file.write_text(
        json.dumps(
            {
                "task-api-key": api_key,
                "task-api-cursor-key": secrets.token_urlsafe(32),
                **other_secrets,
            }
        )
    )

    # The Redis profile's resources, or another profile's files of the same names.
    sources = {path.name: path for path in (COMPONENTS / "resources").glob("*.yaml")}
    if backend != "redis":
        sources |= {path.name: path for path in (COMPONENTS / backend).glob("*.yaml")}
    for source in sorted(sources.values()):
        documents = [d for d in yaml.safe_load_all(source.read_text()) if d]
        for resource in documents:
            for name, value in addresses.items():
                _set_metadata(resource, name, value)
            _set_metadata(resource, "secretsFile", str(secrets_file))
            # Hand a crashed consumer's messages out again sooner than in production, so
            # the crash tests wait less than half a minute; still above the outbox
            # relay's ~11 s wait for its commit marker (see components/resources/
            # pubsub.yaml), or a slow relay message would be handed out twice.
            _set_metadata(resource, "processingTimeout", HARNESS_PROCESSING_TIMEOUT)
            _set_metadata(resource, "redeliverInterval", "2s")
            variant = (component_metadata or {}).get(resource["metadata"]["name"], {})
            for name, value in variant.items():
                _set_metadata(resource, name, value)
        (resources_dir / source.name).write_text(yaml.safe_dump_all(documents))

    # One Configuration per sidecar, as in every environment.
    config_files = {}
    for source in sorted((COMPONENTS / "config").glob("*.yaml")):
        config = yaml.safe_load(source.read_text())
        config["spec"]["nameResolution"]["configuration"]["connectionString"] = str(
            target / "name-resolution.db"
        )
        if otlp_address:
            config["spec"]["tracing"]["otel"]["endpointAddress"] = otlp_address
        else:
            del config["spec"]["tracing"]
        config_files[source.stem] = target / f"config-{source.name}"
        config_files[source.stem].write_text(yaml.safe_dump(config))
    return resources_dir, config_files, api_key
