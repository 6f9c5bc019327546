"""`python3 tools/cluster up|down|status|env` (see cli.py)."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Run as a directory, this file belongs to no package: it imports the package by its name
# from tools/ (where host_state.py lies too), and the package's modules import each other
# relatively. tools/ takes the place of this directory at the head of the path, where a
# module of the package named like a standard one would shadow it. mypy, run on tools/ from
# the repository root, knows the package as tools.cluster.
TOOLS = str(Path(__file__).resolve().parent.parent)
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = TOOLS
elif TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
if TYPE_CHECKING:
    from tools.cluster.cli import main
else:
    from cluster.cli import main

if __name__ == "__main__":
    sys.exit(main())
