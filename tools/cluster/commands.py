"""How the cluster tool runs a host command, reports progress and fails: `run` raises
ClusterError, which the verbs turn into one FAILED line and exit status 1."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


class ClusterError(Exception):
    pass


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; its output is returned (stderr shown unless quiet)."""
    args = [str(a) for a in argv]
    result = subprocess.run(
        args,
        input=input_text,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if check and result.returncode != 0:
        if not quiet:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise ClusterError(f"failed ({result.returncode}): {shlex.join(args)}")
    return result
