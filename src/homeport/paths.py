"""Where homeport keeps its state: ``$HOMEPORT_STATE_DIR``, else ``$XDG_STATE_HOME/homeport``,
else ``~/.local/state/homeport``. Created with mode 0700 on first use."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir(create: bool = True) -> Path:
    explicit = os.environ.get("HOMEPORT_STATE_DIR")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "homeport"
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
