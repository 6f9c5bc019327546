"""The service Dockerfiles: hadolint-clean, multi-stage, pinned, non-root, only the
service and its libraries inside, no build tools in the final stage."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.resources import REPO_ROOT
from harness.tools import uv_binary

APPS = {"task-api": ("task_api", 8000), "notification-service": ("notification_service", 8001)}


def dockerfile(app: str) -> Path:
    return REPO_ROOT / "services" / app / "Dockerfile"


def stages(text: str) -> list[str]:
    """The instructions of each stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]
    found: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(line)
    return ["\n".join(stage) for stage in found]


@pytest.mark.parametrize("app", APPS)
def test_hadolint_finds_nothing(app: str) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(dockerfile(app))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("app", APPS)
def test_structure(app: str) -> None:
    package, port = APPS[app]
    text = dockerfile(app).read_text()
    *_, final = stages(text)
    assert len(stages(text)) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1)), "pin the patch release"
    assert re.search(r"FROM ghcr.io/astral-sh/uv:\d+\.\d+\.\d+ ", text)
    assert "uv sync --frozen --no-dev --package " + app in text
    copied = re.findall(r"^COPY (?!--from)(\S+)", text, re.M)
    assert all(
        src in ("pyproject.toml", "uv.lock")
        or src.startswith(("libs/contracts/", "libs/dapr-service-kit/", f"services/{app}/"))
        for src in copied
    ), copied
    assert re.search(r"^USER 10001", final, re.M)
    assert "uv" not in re.sub(r"/app/\.venv|uvicorn", "", final), "no uv in the final stage"
    assert "pip install" not in final
    assert f'CMD ["uvicorn", "{package}.main:app", "--host", "0.0.0.0", "--port", "{port}"' in final
    assert f"EXPOSE {port}" in final


@pytest.mark.parametrize("app", APPS)
def test_the_build_stage_installs_from_what_it_copies(app: str, tmp_path: Path) -> None:
    """Replays the build stage without a Docker engine: the files its COPY lines take
    into an empty directory, then its `uv sync` lines (host uv and Python instead of the
    image's). The service must import, and no dev tool may be installed."""
    package, _ = APPS[app]
    build = stages(dockerfile(app).read_text())[1]
    for line in build.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, target = line.split()[1:]
            for source in sources:
                destination = (
                    tmp_path / target / (Path(source).name if target.endswith("/") else "")
                )
                origin = REPO_ROOT / source
                destination.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    shutil.copytree(origin, tmp_path / target, dirs_exist_ok=True)
                else:
                    shutil.copy(origin, destination if target.endswith("/") else tmp_path / target)
        elif line.startswith("RUN uv sync"):
            # The image's uv is the one bootstrap resolved here, never a bare `uv`.
            command = [str(uv_binary()), *line.removeprefix("RUN uv ").split()]
            env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / ".venv")}
            result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
    python = tmp_path / ".venv" / "bin" / "python"
    imported = subprocess.run(
        [
            str(python),
            "-c",
            f"import {package}.main, dapr_service_kit.secrets; print({package}.__file__)",
        ],
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(str(tmp_path))
    installed = {
        p.name.split("-")[0].lower() for p in (tmp_path / ".venv").glob("lib/*/site-packages/*")
    }
    assert not installed & {"pytest", "mypy", "ruff", "notification_service", "task_api"} - {
        package
    }
