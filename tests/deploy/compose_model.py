"""The model `docker compose -f a.yml -f b.yml ...` runs, built without Docker from the
project's compose files, and a check of a model against the Compose specification."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.resources import REPO_ROOT


class Reset:
    """`!reset`: what the files before it set for this key is dropped."""


@dataclass(frozen=True)
class Override:
    """`!override`: this value replaces the one before it instead of merging into it."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    pass


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    assert isinstance(node, yaml.ScalarNode)
    return Override(loader.construct_scalar(node))


ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())
ComposeLoader.add_constructor("!override", _override)


def compose_merge(base: Any, other: Any, path: tuple[str, ...] = ()) -> Any:
    """What `docker compose -f base -f other` does with the two files' models, for what
    the project's files use (compose-go's override rules): mappings merge key by key,
    `command` and a healthcheck's `test` are replaced, a service's volumes are indexed by
    their mount target (a later one takes an earlier one's place), other lists append."""
    if isinstance(other, Override):
        return other.value
    if isinstance(base, dict) and isinstance(other, dict):
        merged = dict(base)
        for key, value in other.items():
            if isinstance(value, Reset):
                merged.pop(key, None)
            elif key in merged:
                merged[key] = compose_merge(merged[key], value, (*path, key))
            else:
                merged[key] = value.value if isinstance(value, Override) else value
        return merged
    if isinstance(base, list) and isinstance(other, list):
        if path[-1] in ("command", "entrypoint", "test"):
            return other
        if path[-1] == "volumes":
            by_target = {volume.split(":")[1]: volume for volume in base}
            by_target |= {volume.split(":")[1]: volume for volume in other}
            return list(by_target.values())
        return base + other
    return other


def compose_model(*names: str) -> dict[str, Any]:
    """docker-compose.yml with the named override files over it, in that order."""
    model: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    for name in names:
        override = yaml.load((REPO_ROOT / name).read_text(), Loader=ComposeLoader)  # noqa: S506
        model = compose_merge(model, override)
    return model


def check_against_the_compose_spec(path: Path) -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
