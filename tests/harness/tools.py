"""The tools the project resolved for this run, never a bare name from PATH.

`make test` sources scripts/bootstrap.sh, which exports what it found or installed
(uv may live only in the project's cache, not on PATH). A developer's PATH can hold a
uv or a dapr that a new machine lacks, so tests ask here instead of spawning a name.
"""

import os
import shutil
from pathlib import Path


def uv_binary() -> Path:
    """uv as bootstrap resolved it ($UV); `uv run` sets $UV to itself as well."""
    given = os.environ.get("UV")
    if given and Path(given).is_file():
        return Path(given)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: run the tests through `make test` (it exports $UV)")
    return Path(found)
