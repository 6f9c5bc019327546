"""The tools the project resolved for this run, never a bare name from PATH.

`make test` sources scripts/bootstrap.sh, which exports what it found or installed
(uv may live only in the project's cache, not on PATH). A developer's PATH can hold a
uv or a dapr that a new machine lacks, so tests ask here instead of spawning a name.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from harness.resources import REPO_ROOT


def uv_binary() -> Path:
    """uv as bootstrap resolved it ($UV); `uv run` sets $UV to itself as well."""
    given = os.environ.get("UV")
    if given and Path(given).is_file():
        return Path(given)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: run the tests through `make test` (it exports $UV)")
    return Path(found)


def provided(variable: str, script: str, *args: str) -> Path:
    """A pinned tool: what bootstrap exported in `variable`, else what scripts/`script`
    prints (it builds the tool the first time; a cache hit takes well under a second)."""
    given = os.environ.get(variable)
    if given:
        return Path(given)
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / script), *args], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


def tool_module(script: str, name: str) -> ModuleType:
    """A script of tools/ loaded as a module named `name` (tools/ is no package: the
    scripts run under the system python3), or a package of tools/ (a directory) loaded as
    the package `name`: its modules are then `name`.MODULE, for importlib.import_module."""
    path = REPO_ROOT / "tools" / script
    if path.is_dir():
        for loaded in [m for m in sys.modules if m.startswith(f"{name}.")]:
            del sys.modules[loaded]  # a package loaded again gets its modules again
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
